#include "classifier/table_set.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "classifier/family.h"
#include "classifier/image.h"

namespace flatwall {
namespace {

std::string TableName(size_t t, const TableDesc& d) {
  std::string s = "table " + std::to_string(t);
  if ((d.family == 4 || d.family == 6) && d.hook < kHookCount) {
    s += std::string(" (") + (d.family == 4 ? "ipv4 " : "ipv6 ") + HookName(d.hook) + ")";
  }
  return s;
}

// Record checks, in the order a reader would make them. Each returns null
// when the record is fine, else a static description.

// The checks every record needs, wherever it sits.
template <typename Rec>
const char* CheckFields(const Rec& r) {
  using F = detail::Family<Rec>;
  const RuleCommon& c = r.c;
  if (F::SrcLo(r) > F::SrcHi(r)) return "source address lo > hi";
  if (F::DstLo(r) > F::DstHi(r)) return "destination address lo > hi";
  if (c.sport_lo > c.sport_hi) return "sport lo > hi";
  if (c.dport_lo > c.dport_hi) return "dport lo > hi";
  if (c.iif_lo > c.iif_hi) return "iif lo > hi";
  if (c.oif_lo > c.oif_hi) return "oif lo > hi";
  if (c.icmp_lo > c.icmp_hi) return "icmp lo > hi";
  if (c.proto_lo > c.proto_hi) return "proto lo > hi";
  if (c.ct_state_mask == 0) return "empty ct_state mask (the record could never match)";
  if (c.ct_state_mask & ~kCtAny) return "unknown ct_state bits";
  if (c.flags & ~(kRuleNeedsL4 | kRuleTcpFlagsInvert | kRuleReturnsToPolicy | kRuleHasExt | kRuleL4BeforeCt |
                  kRuleL4BeforeAddr))
    return "unknown flag bits";
  if ((c.flags & kRuleReturnsToPolicy) && c.action != uint8_t(Action::kSkip))
    return "returns-to-policy flag on a record that is not SKIP";
  if (c.action > uint8_t(Action::kSkip)) return "unknown action";
  const Action a = Action(c.action);
  if (a == Action::kReject && c.arg > uint32_t(RejectWith::kIcmp6PortUnreachable))
    return "REJECT with an unknown reject-with";
  return nullptr;
}

// A record of a packed table. The policy must be a catch-all. Interface ids
// are the one field whose domain is not its type's: the compiler numbers the
// interface classes a rule set distinguishes 0..D and writes a wildcard as
// [0, D], so the policy's iif/oif are accepted as [0, D] when D covers every
// interface id the table's other records use.
template <typename Rec>
const char* CheckRecord(const Rec& r, uint32_t index, uint32_t count, uint16_t max_iif,
                        uint16_t max_oif) {
  using F = detail::Family<Rec>;
  using A = typename F::Addr;
  const RuleCommon& c = r.c;
  if (const char* why = CheckFields(r)) return why;
  const Action a = Action(c.action);
  if (index + 1 == count) {
    const bool full = F::SrcLo(r) == 0 && F::SrcHi(r) == A(~A(0)) && F::DstLo(r) == 0 &&
                      F::DstHi(r) == A(~A(0)) && c.sport_lo == 0 && c.sport_hi == 0xffff &&
                      c.dport_lo == 0 && c.dport_hi == 0xffff && c.icmp_lo == 0 &&
                      c.icmp_hi == 0xffff && c.proto_lo == 0 && c.proto_hi == 0xff;
    if (!full) return "last record (the policy) is not a catch-all: a field is not full range";
    if (c.iif_lo != 0 || c.iif_hi < max_iif || c.oif_lo != 0 || c.oif_hi < max_oif)
      return "last record (the policy) does not cover every interface id of the table";
    if (c.ct_state_mask != kCtAny) return "last record (the policy) has a ct_state match";
    if (c.flags & kRuleNeedsL4) return "last record (the policy) requires an L4 header";
    if (c.flags & kRuleHasExt) return "last record (the policy) has a match program";
    if (c.tcp_flags_mask || c.tcp_flags_value || (c.flags & kRuleTcpFlagsInvert))
      return "last record (the policy) has a tcp flags match";
    if (a != Action::kAccept && a != Action::kDrop && a != Action::kReject)
      return "last record (the policy) is not ACCEPT, DROP or REJECT";
  }
  if (a == Action::kLog || a == Action::kCount || a == Action::kSkip) {
    if (c.arg <= index) return "continuation index (arg) is not after the record";
    if (c.arg >= count) return "continuation index (arg) is past the end of the table";
  }
  return nullptr;
}

template <typename Rec>
bool CheckRecords(const uint8_t* b, size_t t, const TableDesc& d, std::string* error) {
  uint16_t max_iif = 0, max_oif = 0;
  for (uint32_t i = 0; i + 1 < d.count; ++i) {
    Rec r;
    std::memcpy(&r, b + d.offset + size_t(i) * sizeof(Rec), sizeof r);
    max_iif = std::max(max_iif, r.c.iif_hi);
    max_oif = std::max(max_oif, r.c.oif_hi);
  }
  for (uint32_t i = 0; i < d.count; ++i) {
    Rec r;
    std::memcpy(&r, b + d.offset + size_t(i) * sizeof(Rec), sizeof r);
    if (const char* why = CheckRecord(r, i, d.count, max_iif, max_oif)) {
      *error = TableName(t, d) + " record " + std::to_string(i) + ": " + why;
      return false;
    }
  }
  return true;
}

template <typename Rec>
std::vector<Rec> Copy(const void* data, const TableInfo& info) {
  std::vector<Rec> out(info.count);
  if (info.count)
    std::memcpy(out.data(), static_cast<const uint8_t*>(data) + info.offset,
                size_t(info.count) * sizeof(Rec));
  return out;
}

template <typename Rec>
const char* CheckEdit(const Rec& r, uint32_t index, uint32_t count) {
  if (const char* why = CheckFields(r)) return why;
  const Action a = Action(r.c.action);
  if (a == Action::kSkip) return "SKIP (RETURN) in an edit overlay";
  if (r.c.flags & kRuleReturnsToPolicy) return "returns-to-policy flag in an edit overlay";
  if (r.c.flags & kRuleHasExt) return "match program in an edit overlay (such rules rebuild)";
  if (a == Action::kLog || a == Action::kCount) {
    if (r.c.arg <= index) return "continuation index (arg) is not after the record";
    if (r.c.arg > count) return "continuation index (arg) is past the end of the overlay";
  }
  return nullptr;
}

}  // namespace

const char* CheckEditRecord(const RuleRecord4& r, uint32_t index, uint32_t count) {
  return CheckEdit(r, index, count);
}
const char* CheckEditRecord(const RuleRecord6& r, uint32_t index, uint32_t count) {
  return CheckEdit(r, index, count);
}

bool ParseTableSet(const void* data, size_t size, std::vector<TableInfo>* tables,
                   std::string* error) {
  tables->clear();
  const uint8_t* b = static_cast<const uint8_t*>(data);
  if (!b || size < sizeof(TableSetHeader)) {
    *error = "buffer of " + std::to_string(size) + " bytes is shorter than the " +
             std::to_string(sizeof(TableSetHeader)) + "-byte header";
    return false;
  }
  TableSetHeader h;
  std::memcpy(&h, b, sizeof h);
  if (h.magic != kTableMagic) {
    *error = "bad magic (not a flatwall table set)";
    return false;
  }
  if (h.version != kTableVersion) {
    *error = "unsupported table set version " + std::to_string(h.version) + " (expected " +
             std::to_string(kTableVersion) + ")";
    return false;
  }
  if (h.total_bytes != size) {
    *error = "header total_bytes is " + std::to_string(h.total_bytes) + " but the buffer has " +
             std::to_string(size) + " bytes";
    return false;
  }
  if (h.table_count == 0) {
    *error = "table set has no tables";
    return false;
  }
  const uint64_t records_start = sizeof(TableSetHeader) + uint64_t(h.table_count) * sizeof(TableDesc);
  if (records_start > size) {
    *error = "descriptor array of " + std::to_string(h.table_count) + " tables runs past the buffer";
    return false;
  }
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // [begin, end) of each table's records
  for (size_t t = 0; t < h.table_count; ++t) {
    TableDesc d;
    std::memcpy(&d, b + sizeof(TableSetHeader) + t * sizeof(TableDesc), sizeof d);
    const std::string name = TableName(t, d);
    if (d.family != 4 && d.family != 6) {
      *error = name + ": unknown family " + std::to_string(d.family);
      return false;
    }
    if (d.hook >= kHookCount) {
      *error = name + ": unknown hook " + std::to_string(d.hook);
      return false;
    }
    const size_t want = d.family == 4 ? sizeof(RuleRecord4) : sizeof(RuleRecord6);
    if (d.record_size != want) {
      *error = name + ": record_size " + std::to_string(d.record_size) + " (expected " +
               std::to_string(want) + ")";
      return false;
    }
    if (d.count == 0) {
      *error = name + ": no records (every table ends with its policy)";
      return false;
    }
    if (d.offset % 4 != 0) {
      *error = name + ": records at offset " + std::to_string(d.offset) + " are not 4-byte aligned";
      return false;
    }
    const uint64_t end = uint64_t(d.offset) + uint64_t(d.count) * d.record_size;
    if (d.offset < records_start || end > size) {
      *error = name + ": records [" + std::to_string(d.offset) + ", " + std::to_string(end) +
               ") lie outside the record area [" + std::to_string(records_start) + ", " +
               std::to_string(size) + ")";
      return false;
    }
    extents.emplace_back(d.offset, end);
    if (!(d.family == 4 ? CheckRecords<RuleRecord4>(b, t, d, error)
                        : CheckRecords<RuleRecord6>(b, t, d, error)))
      return false;
    tables->push_back(TableInfo{Family(d.family), Hook(d.hook), d.count, d.offset});
  }
  std::vector<std::pair<uint64_t, uint64_t>> sorted = extents;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].first < sorted[i - 1].second) {
      size_t a = 0, c = 0;
      for (size_t t = 0; t < extents.size(); ++t) {
        if (extents[t] == sorted[i - 1]) a = t;
        if (extents[t] == sorted[i]) c = t;
      }
      *error = "table " + std::to_string(a) + " and table " + std::to_string(c) +
               " have overlapping records";
      tables->clear();
      return false;
    }
  }
  // The extension section, when there is one, follows every table's
  // records (its contents are checked by ExtTable::Parse).
  if (h.ext_offset != 0) {
    const uint64_t records_end = sorted.empty() ? records_start : sorted.back().second;
    if (h.ext_offset % 4 != 0 || h.ext_offset < records_end || h.ext_offset >= size) {
      *error = "extension section at offset " + std::to_string(h.ext_offset) +
               " is not 4-byte aligned inside [" + std::to_string(records_end) + ", " +
               std::to_string(size) + ")";
      tables->clear();
      return false;
    }
  }
  return true;
}

std::string ValidateTableSet(const void* data, size_t size) {
  std::vector<TableInfo> tables;
  std::string error;
  return ParseTableSet(data, size, &tables, &error) ? std::string() : error;
}

std::vector<RuleRecord4> CopyRecords4(const void* data, const TableInfo& info) {
  return Copy<RuleRecord4>(data, info);
}

std::vector<RuleRecord6> CopyRecords6(const void* data, const TableInfo& info) {
  return Copy<RuleRecord6>(data, info);
}

std::shared_ptr<const TableSet> TableSet::Build(const void* data, size_t size,
                                                const ClassifierOptions& options,
                                                std::string* error) {
  return LoadOrBuild(data, size, nullptr, 0, options, error, nullptr);
}

namespace {

// The image's header (image.h) for this buffer: anything else is refused.
void CheckImageHeader(ImageReader* in, const void* data, size_t size, size_t tables) {
  ImageCheck(in->U32("image magic") == kImageMagic, "image", "bad magic (not a classifier image)");
  const uint32_t version = in->U32("image version");
  if (version != kImageVersion)
    throw ImageError("image format " + std::to_string(version) + ", this build reads format " +
                     std::to_string(kImageVersion));
  ImageCheck(in->U64("image fingerprint") == ImageFingerprint(), "image",
             "made by another build of the classifier (fingerprint differs)");
  const uint64_t hash = in->U64("image tables hash");
  const uint64_t bytes = in->U64("image tables size");
  ImageCheck(bytes == size && hash == HashBytes(data, size), "image",
             "made for other packed tables");
  ImageCheck(in->U32("image table count") == tables, "image", "table count differs");
}

}  // namespace

std::shared_ptr<const TableSet> TableSet::LoadOrBuild(const void* data, size_t size,
                                                      const void* image, size_t image_size,
                                                      const ClassifierOptions& options,
                                                      std::string* error,
                                                      std::string* image_error) {
  std::vector<TableInfo> infos;
  if (!ParseTableSet(data, size, &infos, error)) return nullptr;
  if (!IsKnownAlgorithm(options.algorithm)) {
    *error = "unknown classifier algorithm \"" + options.algorithm + "\"";
    return nullptr;
  }
  if (image) {
    try {
      auto set = FromImage(data, size, infos, image, image_size, options.simd);
      if (image_error) image_error->clear();
      return set;
    } catch (const ImageError& e) {
      if (image_error) *image_error = e.what();
    } catch (const std::bad_alloc&) {
      if (image_error) *image_error = "out of memory loading the image";
    }
  }
  auto set = std::shared_ptr<TableSet>(new TableSet());
  for (const TableInfo& info : infos) {
    Table t;
    t.info = info;
    if (info.family == Family::kIPv4) {
      const auto recs = CopyRecords4(data, info);
      t.v4 = BuildClassifier4(recs.data(), info.count, options);
    } else {
      const auto recs = CopyRecords6(data, info);
      t.v6 = BuildClassifier6(recs.data(), info.count, options);
    }
    set->tables_.push_back(std::move(t));
  }
  return set;
}

std::shared_ptr<const TableSet> TableSet::FromImage(const void* data, size_t size,
                                                    const std::vector<TableInfo>& infos,
                                                    const void* image, size_t image_size,
                                                    bool simd) {
  const uint8_t* b = static_cast<const uint8_t*>(data);
  ImageReader in(static_cast<const uint8_t*>(image), image_size);
  CheckImageHeader(&in, data, size, infos.size());
  auto set = std::shared_ptr<TableSet>(new TableSet());
  for (const TableInfo& info : infos) {
    ImageCheck(in.U32("table family") == uint32_t(info.family), "image", "table family differs");
    ImageReader section = in.Section("table section");
    Table t;
    t.info = info;
    if (info.family == Family::kIPv4) t.v4 = LoadClassifier4(b + info.offset, info.count, &section, simd);
    else t.v6 = LoadClassifier6(b + info.offset, info.count, &section, simd);
    ImageCheck(section.left() == 0, "image", "table section has trailing bytes");
    set->tables_.push_back(std::move(t));
  }
  ImageCheck(in.left() == 0, "image", "trailing bytes after the last table");
  return set;
}

std::vector<uint8_t> TableSet::SaveImage(const void* data, size_t size) const {
  ImageWriter w;
  w.U32(kImageMagic);
  w.U32(kImageVersion);
  w.U64(ImageFingerprint());
  w.U64(HashBytes(data, size));
  w.U64(size);
  w.U32(uint32_t(tables_.size()));
  for (const Table& t : tables_) {
    w.U32(uint32_t(t.info.family));
    const size_t at = w.size();
    w.U64(0);  // the section's size, patched below
    if (t.v4) t.v4->SaveImage(&w);
    else t.v6->SaveImage(&w);
    w.PatchU64(at, w.size() - at - sizeof(uint64_t));
  }
  return std::move(w.bytes());
}

int TableSet::Find(Family family, Hook hook) const {
  for (size_t i = 0; i < tables_.size(); ++i)
    if (tables_[i].info.family == family && tables_[i].info.hook == hook) return int(i);
  return -1;
}

}  // namespace flatwall
