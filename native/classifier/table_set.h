// A whole compiled rule set (rule_table.h): validation of the packed buffer,
// one classifier per table, and the evaluation loop that turns a sequence of
// lookups into a verdict.
//
// Validation is the trust boundary between the TypeScript compiler and the
// native code: every check a classifier or the dataplane relies on is made
// here once, reading the buffer only through bounds-checked copies, so a
// corrupt or hostile buffer yields an error message, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classifier/classifier.h"

namespace flatwall {

// One table of a validated buffer.
struct TableInfo {
  Family family;
  Hook hook;
  uint32_t count;   // records, policy included
  uint32_t offset;  // byte offset of the first record in the buffer
};

// Checks the whole buffer: header (magic, version, total_bytes == size),
// descriptors (family, hook, record size, count >= 1, 4-byte aligned
// records inside the buffer, after the descriptors, not overlapping), and
// every record: lo <= hi for every range, known action, flags and ct bits,
// REJECT's RejectWith in range, LOG/COUNT/SKIP continuing at an index after
// their own and inside the table, and a last record that is a terminal
// catch-all (every field full range, ct mask kCtAny, no L4 requirement, no
// tcp flags, ACCEPT/DROP/REJECT). For iif/oif "full range" means [0, D]
// with D at least every interface id the table uses (the compiler's
// interface classes are 0..D). On failure returns false and sets *error to
// a message naming the table and the record.
bool ParseTableSet(const void* data, size_t size, std::vector<TableInfo>* tables,
                   std::string* error);

// The same, for callers that only want the verdict: "" when valid.
std::string ValidateTableSet(const void* data, size_t size);

// The checks for one record of a single-rule edit's overlay
// (dataplane/ruleset.h): the per-field checks of ParseTableSet, no SKIP
// and no policy, and LOG/COUNT continuing at an index in (index, count] --
// count meaning "after the overlay". Null when fine, else why not.
const char* CheckEditRecord(const RuleRecord4& r, uint32_t index, uint32_t count);
const char* CheckEditRecord(const RuleRecord6& r, uint32_t index, uint32_t count);

// The records of table `info` of a validated buffer, copied out (the buffer
// need not be aligned for RuleRecord4/6).
std::vector<RuleRecord4> CopyRecords4(const void* data, const TableInfo& info);
std::vector<RuleRecord6> CopyRecords6(const void* data, const TableInfo& info);

// One classifier per table of a buffer. Immutable once built, so one
// instance is shared (std::shared_ptr<const TableSet>) by every worker, and
// a new rule set is swapped in atomically by replacing the pointer.
class TableSet {
 public:
  // Validates, then builds every table's classifier. Returns null and sets
  // *error on an invalid buffer or an unknown algorithm.
  static std::shared_ptr<const TableSet> Build(const void* data, size_t size,
                                               const ClassifierOptions& options,
                                               std::string* error);

  // Validates like Build, then loads every classifier from `image`
  // (classifier/image.h) instead of building it -- if the image is one of
  // exactly this buffer, made by this build, and well formed. Otherwise
  // builds as Build does and sets *image_error to why the image was
  // refused (left empty when it was used). Returns null and sets *error
  // only when the buffer itself is invalid (or the build fails). A null
  // `image` is Build.
  static std::shared_ptr<const TableSet> LoadOrBuild(const void* data, size_t size,
                                                     const void* image, size_t image_size,
                                                     const ClassifierOptions& options,
                                                     std::string* error, std::string* image_error);

  // The image of every classifier of this set, built from the buffer
  // `data` (which the image is then tied to).
  std::vector<uint8_t> SaveImage(const void* data, size_t size) const;

  size_t size() const { return tables_.size(); }
  const TableInfo& info(size_t i) const { return tables_[i].info; }
  // The classifier of table i, or null when the table is of the other family.
  const Classifier4* v4(size_t i) const { return tables_[i].v4.get(); }
  const Classifier6* v6(size_t i) const { return tables_[i].v6.get(); }
  // Index of the table for (family, hook), or -1.
  int Find(Family family, Hook hook) const;

 private:
  // The classifiers of a validated buffer from its image; throws ImageError.
  static std::shared_ptr<const TableSet> FromImage(const void* data, size_t size,
                                                   const std::vector<TableInfo>& infos,
                                                   const void* image, size_t image_size, bool simd);

  struct Table {
    TableInfo info;
    std::unique_ptr<Classifier4> v4;
    std::unique_ptr<Classifier6> v6;
  };
  std::vector<Table> tables_;
};

// The result of evaluating one key against one table.
struct Verdict {
  Action action;     // ACCEPT, DROP or REJECT; DROP when nothing matched
  uint32_t arg;      // RejectWith for REJECT, else the record's arg
  uint32_t index;    // the terminal record, or kNoMatch
};

// Walks a table the way the dataplane does: look up, report the match to
// `on_match(index)` (counters, LOG events), and continue at the record's arg
// for LOG, COUNT and SKIP, until a terminal record. Bounded: every
// continuation index is strictly greater than the record's own (validation
// guarantees it; the loop also enforces it, so an unvalidated table cannot
// make it spin). A key that matches nothing, which a valid table cannot
// produce since it ends in a catch-all, is dropped with index kNoMatch.
//
// TakeRecord is the step every walk shares once it has taken record r (this
// loop, ext::EvaluateExt, the hot-drop walk): a non-terminal record moves
// *start to its arg and returns true; a terminal one sets *verdict and
// returns false, as does a continuation that would not move forward.
inline bool TakeRecord(const RuleCommon& c, uint32_t r, uint32_t* start, Verdict* verdict) {
  const Action a = static_cast<Action>(c.action);
  if (a == Action::kLog || a == Action::kCount || a == Action::kSkip) {
    if (c.arg <= r) {
      *verdict = Verdict{Action::kDrop, 0, kNoMatch};
      return false;
    }
    *start = c.arg;
    return true;
  }
  *verdict = Verdict{a, c.arg, r};
  return false;
}

template <typename C, typename Key, typename OnMatch>
Verdict Evaluate(const C& classifier, const Key& key, OnMatch&& on_match) {
  uint32_t start = 0;
  Verdict verdict{};
  for (;;) {
    const uint32_t r = classifier.Lookup(key, start);
    if (r == kNoMatch) return Verdict{Action::kDrop, 0, kNoMatch};
    on_match(r);
    if (!TakeRecord(classifier.record(r).c, r, &start, &verdict)) return verdict;
  }
}

template <typename C, typename Key>
Verdict Evaluate(const C& classifier, const Key& key) {
  return Evaluate(classifier, key, [](uint32_t) {});
}

}  // namespace flatwall
