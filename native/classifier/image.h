// A serialized image of built classifiers: what `flatwall compile -o` stores
// next to the packed tables so that `flatwall run --snapshot` forwards
// without rebuilding (a 1M-rule tuple classifier takes ~1 s to build and
// ~0.05 s to load from its image).
//
// FORMAT
// ======
//
// Little-endian, a flat sequence of fields written by ImageWriter and read
// back by ImageReader (no pointers, no padding bytes, no alignment needs):
//
//   u32 magic "FWCI", u32 kImageVersion
//   u64 fingerprint          ImageFingerprint(): layout + hashing of this build
//   u64 tables_hash          HashBytes() of the whole packed table buffer
//   u64 tables_bytes         its length
//   u32 table_count          as in the buffer
//   per table, in buffer order:
//     u32 family             4 or 6, as the buffer's descriptor
//     u64 section_bytes      what follows for this table
//     the classifier's own section (Classifier::SaveImage): an algorithm id,
//     then that algorithm's arrays -- for the tuple classifier the defaults,
//     bands, per-table masks/offsets, every filter word and every slot-array
//     entry as one bulk array each, and each band's fallback tree.
//
// The records are NOT in the image: they are the packed tables' own records,
// which the loader copies straight from the buffer it validated (ParseTableSet),
// so the image can only describe the structure over them.
//
// VERSIONING AND TIE-IN
// =====================
//
// An image is only ever used with exactly the build and the tables it was
// made for:
//   - kImageVersion is bumped when the meaning of a stored field changes;
//   - the fingerprint hashes the sizes of the stored structures and the
//     output of the build's own hash functions and entry encoder on fixed
//     inputs, so a change to either (which would silently misplace every
//     key) refuses old images without anyone remembering to bump a number;
//   - tables_hash ties the image to its packed buffer. It is a fast 64-bit
//     hash, not a cryptographic one: integrity against corruption and
//     tampering is the snapshot's SHA-256 (src/control/snapshot.ts); this
//     hash catches an image paired with the wrong tables.
//
// THE TRUST BOUNDARY
// ==================
//
// Loading must never crash or read out of bounds, whatever the bytes. The
// reader bounds-checks every read against the bytes left and refuses any
// count whose elements could not fit in them before allocating, so a
// truncated image fails cleanly and a huge count cannot exhaust memory. The
// loaders then re-check every invariant a lookup relies on for memory
// safety (tuple_merge.cc, split_tree.h): record indices below the record
// count, band table ranges inside the table array, filter and slot ranges
// inside their arrays with the filter sized by the table's shift, every slot
// range ending in an empty slot (a run scan stops there), tree children
// pointing forward (so a descent ends) and leaves inside the leaf array.
// What a bounds check cannot see -- an image that is well formed but built
// for other records -- is what the fingerprint and tables_hash are for.
//
// Cost: loading is the bulk copies of the records, filters and entries plus
// one linear pass over the entries to check their indices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "classifier/classifier.h"

namespace flatwall {

constexpr uint32_t kImageMagic = 0x49435746;  // "FWCI" little-endian
constexpr uint32_t kImageVersion = 1;

// Algorithm ids of a classifier section.
enum class ImageAlgorithm : uint32_t { kLinear = 1, kTupleMerge = 2 };

// A fast 64-bit hash of a byte range (tie-in check, not integrity).
uint64_t HashBytes(const void* data, size_t size);

// This build's image fingerprint (see above). Stable within a build.
uint64_t ImageFingerprint();

// A malformed image: the loaders turn it into an error message.
class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ImageWriter {
 public:
  void U32(uint32_t v) { Raw(&v, sizeof v); }
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  // A count, then the elements' bytes in one copy. T must have no padding.
  template <typename T>
  void Array(const T* p, size_t n) {
    U64(n);
    Raw(p, n * sizeof(T));
  }
  void Raw(const void* p, size_t n) {
    const size_t at = bytes_.size();
    bytes_.resize(at + n);
    if (n) std::memcpy(bytes_.data() + at, p, n);
  }
  size_t size() const { return bytes_.size(); }
  // Overwrites a U64 written earlier at byte offset `at`.
  void PatchU64(size_t at, uint64_t v) { std::memcpy(bytes_.data() + at, &v, sizeof v); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Reads what ImageWriter wrote; any read past the end throws ImageError.
class ImageReader {
 public:
  ImageReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  uint32_t U32(const char* what) {
    uint32_t v;
    Raw(&v, sizeof v, what);
    return v;
  }
  uint64_t U64(const char* what) {
    uint64_t v;
    Raw(&v, sizeof v, what);
    return v;
  }
  // A count and that many elements into *out (any vector-like container of
  // T). The count is checked against the bytes left before anything is
  // allocated. T must have no padding.
  template <typename V>
  void Array(V* out, const char* what) {
    using T = typename V::value_type;
    const uint64_t n = U64(what);
    if (n > left() / sizeof(T))
      throw ImageError(std::string(what) + ": " + std::to_string(n) + " elements do not fit in the " +
                       std::to_string(left()) + " bytes left");
    out->resize(size_t(n));
    Raw(out->data(), size_t(n) * sizeof(T), what);
  }
  // A count of elements that take at least `min_bytes` each in what follows.
  uint32_t Count(const char* what, size_t min_bytes) {
    const uint32_t n = U32(what);
    if (uint64_t(n) * min_bytes > left())
      throw ImageError(std::string(what) + ": count " + std::to_string(n) + " exceeds the image");
    return n;
  }
  void Raw(void* out, size_t n, const char* what) {
    if (n > left()) throw ImageError(std::string("truncated at ") + what);
    if (n) std::memcpy(out, p_, n);
    p_ += n;
  }
  // A U64 length, then a reader over that many bytes, which this one skips.
  ImageReader Section(const char* what) {
    const uint64_t n = U64(what);
    if (n > left()) throw ImageError(std::string(what) + " runs past the end of the image");
    ImageReader sub(p_, size_t(n));
    p_ += n;
    return sub;
  }
  size_t left() const { return size_t(end_ - p_); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Throws ImageError(what + ": " + why) unless cond.
inline void ImageCheck(bool cond, const char* what, const char* why) {
  if (!cond) throw ImageError(std::string(what) + ": " + why);
}

// A classifier over `count` records, loaded from the section that its
// SaveImage wrote for the same records. `records` is copied and need not be
// aligned. Throws ImageError when the section is malformed.
std::unique_ptr<Classifier4> LoadClassifier4(const void* records, uint32_t count, ImageReader* in,
                                             bool simd = true);
std::unique_ptr<Classifier6> LoadClassifier6(const void* records, uint32_t count, ImageReader* in,
                                             bool simd = true);

}  // namespace flatwall
