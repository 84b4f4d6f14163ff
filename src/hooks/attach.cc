// Attachments: many independent clients on the same functions, attached and
// detached while other threads run them.
//
// ---------------------------------------------------------------------------
// Shared state, who writes it, who reads it
//   MetaEntry::data -> HandlerBlock: the handlers of one function, in attach
//     order. A block is immutable once published. Written (release) by
//     attach/detach under g_attach_mutex; read (acquire) by the dispatcher
//     inside its read section.
//   HandlerBlock::refs: how many functions point at the block (blocks are
//     shared between the functions of a batch); g_attach_mutex only.
//   g_retired: blocks no function points at any more, freed after a grace
//     period; g_attach_mutex only.
//   g_entries_of: each attachment's metadata entries (from T1, for D1/D4);
//     g_attach_mutex only.
//   g_memo_slots: the site memo of each metadata entry (patch::SiteMemo,
//     verified hints for ChangeSites); written by T2/D1 and by ChangeSites
//     during T3/D2, all under g_attach_mutex.
//
// Attach(functions, hooks), under g_attach_mutex
//   T1. Get every function's metadata entry (one batch; all or nothing).
//   T2. For each function publish a new block = old block + this client.
//       The old block is retired, not freed (readers may hold it). Functions
//       that had the same block get the same new one. Note the pages of the
//       sites and, for functions attached before, their site memos.
//   T3. Patch every site that was not patched yet (one ChangeSites batch: one
//       synchronization round for all). When T3 returns, every call on every
//       thread runs the new handlers. Keep T1's entries for the detach.
//   On failure in T3: publish the old blocks back, wait a grace period, free
//   the new blocks, put the entries and retract those T1 created: nothing
//   remains changed (entries that were dormant before are dormant again).
//
// Detach(attachment), under g_attach_mutex
//   D1. For each function (its entry kept by T3) publish a block without this
//       client (or none); note the sites' pages and memos.
//   D2. Unpatch the sites that have no handler left (one ChangeSites batch).
//   D3. sync::Synchronize(): every thread that could have read an old block
//       has left its read section, so no handler of this client is running
//       or will run (a thread entering the trampoline from now on reads the
//       new block, or an entry with none).
//   D4. Free the retired blocks; put the entries (an entry left without users
//       stays dormant, with null data: metadata.cc).
//   On failure in D2 (ChangeSites undid its writes: every site is still
//   patched): publish the old blocks back, wait a grace period, free the new
//   blocks and stay attached; the caller may call Detach again.
//   A thread that executed a site's call before D2 but reaches the dispatcher
//   only after D4 finds a block without this client, an entry with no block,
//   or (once the entry was reclaimed) no entry or a new one, and runs nothing
//   it should not: the dispatcher reads everything inside its read section.
//
// The dispatcher (padhook_dispatch_entry), on every hooked call
//   R1. Enter the read section; if this thread is already inside one (a
//       handler called a hooked function, or a signal handler interrupted
//       one), skip the handlers and count it: the recursion guard.
//   R2. Look the metadata up from the site's return address (no lock).
//   R3. Run each handler of the block, in attach order, until one skips or
//       diverts the call.
//   R4. Leave the read section.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "arch.h"
#include "fault/fault.h"
#include "hooks/clock.h"
#include "hooks/handler_block.h"
#include "hooks/shadow_stack.h"
#include "loader_events.h"
#include "metadata_inline.h"
#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "patch/live_patcher.h"
#include "sync/grace_period.h"

namespace padhook {

namespace {

// Replaces blocks for one attach or detach batch. Functions that had the same
// block get the same new block, so attaching one client to n functions
// allocates one block, not n (and detach likewise). Blocks are shared between
// functions, so each counts its functions (refs) and is retired, to be freed
// after a grace period, only when the last function lets go of it.
// The common batch has one old block for all its functions (none, on a first
// attach): that case costs a compare per function, no map and no list.
class BlockSwap {
 public:
  BlockSwap(const internal::AttachmentState* add, const internal::AttachmentState* remove)
      : add_(add), remove_(remove) {}
  BlockSwap(const BlockSwap&) = delete;
  BlockSwap& operator=(const BlockSwap&) = delete;
  // Without Commit (a failure before, or the old blocks published back): the
  // new blocks were never published or no reader holds them any more; free them.
  ~BlockSwap() {
    if (committed_) return;
    for (auto& [old, fresh] : made_) {
      if (fresh != nullptr) HandlerBlock::Free(fresh);
    }
  }
  // The new block for a function whose current block is `old` (made once per
  // distinct `old`); counts the function on it.
  HandlerBlock* Replace(HandlerBlock* old) {
    if (!have_last_ || old != last_old_) SwitchTo(old);
    if (last_fresh_ != nullptr) ++last_fresh_->refs;
    if (old != nullptr) ++released_.back().second;
    return last_fresh_;
  }
  // Old blocks Commit may retire (to reserve room for them beforehand).
  size_t released() const noexcept { return released_.size(); }
  // After publishing: drop the functions' references to their old blocks.
  // Allocates nothing when `retired` has room for released() more.
  void Commit(std::vector<HandlerBlock*>* retired) noexcept {
    committed_ = true;
    for (auto [old, functions] : released_) {
      old->refs -= functions;
      if (old->refs == 0) retired->push_back(old);
    }
  }
  // The block `fresh` replaced (attach: every new block replaced exactly one).
  HandlerBlock* OldOf(HandlerBlock* fresh) const noexcept {
    if (fresh == last_fresh_) return last_old_;
    for (const auto& [old, made] : made_) {
      if (made == fresh) return old;
    }
    return nullptr;
  }

 private:
  // A function with another old block than the previous one.
  // May throw std::bad_alloc: the caller has published nothing yet (the
  // first pass of Attach and Detach), and the destructor frees what was made.
  [[gnu::noinline]] void SwitchTo(HandlerBlock* old) {
    auto it = made_.find(old);
    if (it == made_.end()) {
      // The slot first, then the block: a throwing insert leaks no block.
      it = made_.emplace(old, nullptr).first;
      it->second = HandlerBlock::Make(old, add_, remove_);
    }
    last_old_ = old;
    last_fresh_ = it->second;
    have_last_ = true;
    if (old != nullptr) released_.emplace_back(old, 0);
  }

  const internal::AttachmentState* add_;
  const internal::AttachmentState* remove_;
  std::map<HandlerBlock*, HandlerBlock*> made_;
  bool have_last_ = false;
  HandlerBlock* last_old_ = nullptr;
  HandlerBlock* last_fresh_ = nullptr;
  std::vector<std::pair<HandlerBlock*, uint32_t>> released_;  // (old block, functions), runs
  bool committed_ = false;
};

std::mutex g_attach_mutex;             // serializes attach and detach
std::vector<HandlerBlock*> g_retired;  // under g_attach_mutex; freed after a grace period

// The site memo of each metadata entry (patch::SiteMemo), so that attaching
// or detaching a function again writes its site without reading its Function
// or encoding its call again. By metadata index, in a reserved region (only
// the pages of indices used are touched); under g_attach_mutex. A slot is
// used only for the function it was made for (the entry's address), and only
// while no module was unloaded since: a module loaded again at the same
// address may have other bytes or another stub. (Even then a memo is only a
// hint: the patcher verifies every store.)
struct MemoSlot {
  uintptr_t function;
  unsigned long long unloads;  // ModuleUnloads() when it was made
  patch::SiteMemo memo;
};
MemoSlot* g_memo_slots = nullptr;

// The metadata entries T1 got for each attachment, by position in its
// function list, kept for its detach (D1 and D4 then look nothing up; the
// attachment's users keep the entries live). Under g_attach_mutex.
std::unordered_map<const internal::AttachmentState*, std::vector<MetaEntry*>> g_entries_of;

// Reserves the memo slots (once); false if the region cannot be had.
[[gnu::noinline]] bool MapMemoSlots() {
  if (fault::Fail(fault::Kind::kMmap)) return false;  // no memos: a slower path, not an error
  void* region = mmap(nullptr, sizeof(MemoSlot) * size_t{MetadataTable::kMaxEntries},
                      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) return false;
  g_memo_slots = static_cast<MemoSlot*>(region);
  return true;
}

// The memo of entry e, reset when it was made for another function or before
// a module was unloaded. The slots must be mapped (MapMemoSlots).
[[gnu::always_inline]] inline patch::SiteMemo* MemoOf(const MetaEntry* e,
                                                      unsigned long long unloads) {
  MemoSlot& slot = g_memo_slots[e->index];
  const uintptr_t function = e->function.load(std::memory_order_relaxed);
  if (slot.function != function || slot.unloads != unloads) slot = {function, unloads, {}};
  return &slot.memo;
}

void FreeRetiredLocked() {
  for (HandlerBlock* b : g_retired) HandlerBlock::Free(b);
  g_retired.clear();
}

// Room for `more` elements without losing geometric growth (reserve(size +
// more) alone would reallocate on every batch). May throw std::bad_alloc:
// called before anything is published.
template <typename T>
void ReserveMore(std::vector<T>* v, size_t more) {
  if (v->capacity() - v->size() >= more) return;
  v->reserve(std::max(v->size() + more, 2 * v->capacity()));
}

// What attach and detach return when an allocation failed (std::bad_alloc
// caught at the API boundary, after everything was rolled back). The
// message is built with a fallback that cannot allocate (a short string).
Status OutOfMemory(const char* what) noexcept {
  try {
    return Status(Errc::kOutOfMemory, std::string("out of memory while ") + what);
  } catch (const std::bad_alloc&) {
    return Status(Errc::kOutOfMemory, "out of memory");  // fits the string's own buffer
  }
}

}  // namespace

Attachment::~Attachment() { (void)Detach(); }

Attachment::Attachment(Attachment&& other) noexcept : state_(other.state_) {
  other.state_ = nullptr;
}

Attachment& Attachment::operator=(Attachment&& other) noexcept {
  if (this != &other) {
    (void)Detach();
    state_ = other.state_;
    other.state_ = nullptr;
  }
  return *this;
}

size_t Attachment::size() const noexcept { return state_ ? state_->functions.size() : 0; }

namespace {

// True when `functions` is sorted by entry without repeats. The common list
// (a module's functions in order) is recognized without reading them: a
// module's functions are one array sorted by entry, so increasing pointers
// into the first one's array are increasing entries.
bool InEntryOrder(const std::vector<const Function*>& functions) {
  const Module* module = functions.front()->module;
  if (module != nullptr) {
    const Function* begin = module->functions.data();
    const Function* end = begin + module->functions.size();
    bool ordered = true;
    for (size_t i = 0; i < functions.size() && ordered; ++i) {
      ordered = functions[i] >= begin && functions[i] < end &&
                (i == 0 || functions[i - 1] < functions[i]);
    }
    if (ordered) return true;
  }
  for (size_t i = 1; i < functions.size(); ++i) {
    if (functions[i - 1]->entry >= functions[i]->entry) return false;
  }
  return true;
}

// T1..T3 for a list the attachment will own (sorted and de-duplicated here
// unless it already is: callers usually pass functions in address order).
Result<std::unique_ptr<internal::AttachmentState>> AttachOwned(
    std::vector<const Function*> functions, const Hooks& hooks,
    std::shared_ptr<const FunctionTable::Snapshot> snapshot) {
  if (hooks.on_entry == nullptr && hooks.on_exit == nullptr) {
    return Status(Errc::kInvalidArgument, "no handler given (on_entry and on_exit are both null)");
  }
  sync::Initialize();  // so that hooked calls (maybe in signal handlers) never have to
  if (hooks.on_exit != nullptr) {
    EnsureShadowKey();  // before any call can push a shadow frame
    // Entry times are converted in exit handlers: calibrate here, once.
    if ((hooks.flags & PADHOOK_HOOKS_NO_ENTRY_TIME) == 0) CalibrateClock();
  }
  if (functions.empty()) return Status(Errc::kNotFound, "no function to attach to");
  if (sync::InReadSection()) {
    return Status(Errc::kBusy, "attach called from inside a handler");
  }
  auto by_entry = [](const Function* a, const Function* b) { return a->entry < b->entry; };
  if (!InEntryOrder(functions)) {
    std::sort(functions.begin(), functions.end(), by_entry);
    functions.erase(
        std::unique(functions.begin(), functions.end(),
                    [](const Function* a, const Function* b) { return a->entry == b->entry; }),
        functions.end());
  }
  auto state = std::make_unique<internal::AttachmentState>();
  state->hooks = hooks;
  state->snapshot = std::move(snapshot);
  state->functions = std::move(functions);

  std::lock_guard<std::mutex> lock(g_attach_mutex);
  // Allocations that would otherwise come after the sites are patched: the
  // attachment's node in g_entries_of and room in g_retired. Taken first, so
  // that a std::bad_alloc leaves nothing changed; the node goes on failure.
  auto kept = g_entries_of.try_emplace(state.get()).first;
  struct DropNode {  // until the attach succeeds
    std::unordered_map<const internal::AttachmentState*, std::vector<MetaEntry*>>::iterator it;
    bool armed = true;
    ~DropNode() {
      if (armed) g_entries_of.erase(it);
    }
  } drop_node{kept};
  ReserveMore(&g_retired, state->functions.size());
  MetadataTable& table = MetadataTable::Process();
  std::vector<MetaEntry*> created;
  Result<std::vector<MetaEntry*>> entries = table.GetMany(state->functions, &created);  // T1
  if (!entries.ok()) return entries.status();
  // From here until the sites are patched a std::bad_alloc must give the
  // entries back (nothing was published yet: the first pass below only
  // allocates).
  struct UndoGet {  // UndoGetMany allocates nothing it cannot do without
    MetadataTable& table;
    const std::vector<MetaEntry*>& entries;
    const std::vector<MetaEntry*>& created;
    bool armed = true;
    ~UndoGet() {
      if (armed) (void)table.UndoGetMany(entries, created);
    }
  } undo_get{table, *entries, created};

  // T2, first pass (everything that allocates; nothing published): the new
  // block of each function, the sites to patch (those without handlers so
  // far: all of them, usually; then the function list itself is the list),
  // their pages and memos.
  const size_t n = state->functions.size();
  std::vector<const Function*> unpatched;
  bool all_unpatched = true;
  PageSet site_pages;  // from the entries at hand: spares ChangeSites a pass
  // Site memos for functions attached before (a first attach has none: it
  // would only fault the memo pages in; its detach makes them).
  const unsigned long long unloads = created.empty() ? ModuleUnloads() : 0;
  const bool with_memos = created.empty() && (g_memo_slots != nullptr || MapMemoSlots());
  // Every element is set before it is read (no zeroing of 80 KB per 10,000).
  std::unique_ptr<patch::SiteMemo*[]> memos(with_memos ? new patch::SiteMemo*[n] : nullptr);
  std::unique_ptr<HandlerBlock*[]> fresh(new HandlerBlock*[n]);
  BlockSwap swap(state.get(), nullptr);
  for (size_t i = 0; i < n; ++i) {
    MetaEntry* e = (*entries)[i];
    HandlerBlock* old = BlockOf(e);
    fresh[i] = swap.Replace(old);
    patch::AddSitePages(e->function.load(std::memory_order_relaxed), &site_pages);
    if (with_memos) memos[i] = MemoOf(e, unloads);
    if (old != nullptr && all_unpatched) {
      all_unpatched = false;
      unpatched.reserve(n);
      unpatched.assign(state->functions.begin(), state->functions.begin() + i);
    } else if (old == nullptr && !all_unpatched) {
      unpatched.push_back(state->functions[i]);
    }
  }
  // T2, second pass: publish (allocates nothing).
  for (size_t i = 0; i < n; ++i) (*entries)[i]->data.store(fresh[i], std::memory_order_release);
  const std::span<const Function* const> to_patch =
      all_unpatched ? std::span<const Function* const>(state->functions) : unpatched;
  // One memo per function patched, or none.
  const std::span<patch::SiteMemo* const> memo_span(
      memos.get(), all_unpatched && with_memos ? to_patch.size() : 0);
  // ChangeSites never throws: a failed allocation in it is a Status, with
  // every site as before.
  if (Status patched = patch::ChangeSites(to_patch, /*to_call=*/true, &site_pages, memo_span);
      !patched.ok()) {  // T3
    for (MetaEntry* e : *entries) e->data.store(swap.OldOf(BlockOf(e)), std::memory_order_release);
    (void)sync::Synchronize();
    // `swap` and the guards free the new blocks, give the entries back, drop the node.
    return patched;
  }
  // Committed: nothing below allocates (g_retired has room, the node exists).
  undo_get.armed = false;
  drop_node.armed = false;
  swap.Commit(&g_retired);
  kept->second = std::move(*entries);
  return state;
}

}  // namespace

namespace {
// A list the caller of AttachFunctions built for it and no longer needs
// (AttachAddresses, AttachName, AttachGlob): AttachFunctions, the only one
// that may make an Attachment (padhook/hooks.h), takes it over instead of
// copying it. This thread's, valid for one call.
thread_local std::vector<const Function*>* t_donated_list = nullptr;

Result<Attachment> AttachDonated(std::vector<const Function*>* functions, const Hooks& hooks,
                                 std::shared_ptr<const FunctionTable::Snapshot> snapshot) {
  t_donated_list = functions;
  Result<Attachment> attached = AttachFunctions(*functions, hooks, std::move(snapshot));
  t_donated_list = nullptr;
  return attached;
}
}  // namespace

// Every attach ends here: only this friend of Attachment may make one.
Result<Attachment> AttachFunctions(std::span<const Function* const> requested, const Hooks& hooks,
                                   std::shared_ptr<const FunctionTable::Snapshot> snapshot) try {
  std::vector<const Function*> functions;
  if (t_donated_list != nullptr && t_donated_list->data() == requested.data() &&
      t_donated_list->size() == requested.size()) {
    functions = std::move(*t_donated_list);
  } else {
    functions.assign(requested.begin(), requested.end());
  }
  t_donated_list = nullptr;
  Result<std::unique_ptr<internal::AttachmentState>> state =
      AttachOwned(std::move(functions), hooks, std::move(snapshot));
  if (!state.ok()) return state.status();
  return Attachment(state->release());
} catch (const std::bad_alloc&) {
  t_donated_list = nullptr;
  return OutOfMemory("attaching (nothing was attached)");
}

Status Attachment::Detach() {
  if (state_ == nullptr) return Status::Ok();
  if (sync::InReadSection()) return Status(Errc::kBusy, "detach called from inside a handler");
  try {
    return DetachLocked();
  } catch (const std::bad_alloc&) {  // DetachLocked changed nothing: still attached
    return OutOfMemory("detaching (still attached; Detach can be called again)");
  }
}

// D1..D4. A std::bad_alloc is thrown only before D1 publishes anything, and
// leaves the attachment as it was (attached, its entries kept).
Status Attachment::DetachLocked() {
  internal::AttachmentState* const state = state_;
  std::lock_guard<std::mutex> lock(g_attach_mutex);
  const size_t n = state->functions.size();
  // T1's entries, for D1 and D4; the node stays until the detach is done.
  auto kept = g_entries_of.find(state);
  std::vector<MetaEntry*> looked_up;
  if (kept == g_entries_of.end()) {  // cannot happen: every attachment's entries are kept
    looked_up.reserve(n);
    for (const Function* f : state->functions)
      looked_up.push_back(MetadataTableAccess::Lookup(f->entry));
  }
  const std::vector<MetaEntry*>& entries = kept != g_entries_of.end() ? kept->second : looked_up;

  // D1, first pass (everything that allocates; nothing published): the new
  // blocks, the sites to unpatch (those left without handlers: all of them,
  // usually), their pages and memos, room in g_retired.
  std::vector<const Function*> emptied;
  bool all_emptied = true;
  PageSet site_pages;
  const unsigned long long unloads = ModuleUnloads();
  const bool with_memos = g_memo_slots != nullptr || MapMemoSlots();
  std::unique_ptr<patch::SiteMemo*[]> memos(with_memos ? new patch::SiteMemo*[n] : nullptr);
  BlockSwap swap(nullptr, state);
  // Each function's block before D1 (published back if D2 fails), and after.
  std::vector<HandlerBlock*> olds(n), fresh(n);
  for (size_t i = 0; i < n; ++i) {
    const Function* f = state->functions[i];
    MetaEntry* e = entries[i];
    olds[i] = e == nullptr ? nullptr : BlockOf(e);
    fresh[i] = e == nullptr ? nullptr : swap.Replace(olds[i]);
    if (e != nullptr) patch::AddSitePages(e->function.load(std::memory_order_relaxed), &site_pages);
    if (with_memos) memos[i] = e != nullptr ? MemoOf(e, unloads) : nullptr;
    const bool unpatch =
        e != nullptr && fresh[i] == nullptr;  // e == null cannot happen while attached
    if (!unpatch && all_emptied) {
      all_emptied = false;
      emptied.reserve(n);
      emptied.assign(state->functions.begin(), state->functions.begin() + i);
    } else if (unpatch && !all_emptied) {
      emptied.push_back(f);
    }
  }
  ReserveMore(&g_retired, swap.released());
  // D1, second pass: publish (allocates nothing).
  for (size_t i = 0; i < n; ++i) {
    if (entries[i] != nullptr) entries[i]->data.store(fresh[i], std::memory_order_release);
  }
  const std::span<const Function* const> to_unpatch =
      all_emptied ? std::span<const Function* const>(state->functions) : emptied;
  const std::span<patch::SiteMemo* const> memo_span(
      memos.get(), all_emptied && with_memos ? to_unpatch.size() : 0);
  Status status = patch::ChangeSites(to_unpatch, /*to_call=*/false, &site_pages, memo_span);  // D2
  if (!status.ok()) {
    // All or nothing: ChangeSites undid its writes, so every site is still
    // patched. Publish the old blocks back and stay attached, so that the
    // caller can retry. (Before, the handlers were dropped and the sites left
    // patched with no block: attaching those functions again then failed with
    // unexpected bytes forever; tests/fault_test.cc.)
    for (size_t i = 0; i < n; ++i) {
      if (entries[i] != nullptr) entries[i]->data.store(olds[i], std::memory_order_release);
    }
    (void)sync::Synchronize();  // no reader still holds one of the new blocks
    // (`swap` frees them.) A std::bad_alloc from the message below leaves
    // the same state: still attached.
    return Status(status.code(),
                  "detach failed, still attached (the handlers may have missed calls made "
                  "during the attempt; Detach can be called again): " +
                      status.message());
  }
  // Committed: from here nothing may fail half way.
  swap.Commit(&g_retired);    // room reserved above
  (void)sync::Synchronize();  // D3
  FreeRetiredLocked();        // D4
  std::vector<MetaEntry*> held;
  if (kept != g_entries_of.end()) {
    held = std::move(kept->second);
    g_entries_of.erase(kept);
  } else {
    held = std::move(looked_up);
  }
  state_ = nullptr;
  delete state;
  // Everyone's users: the entries stay while other clients hold them. An
  // entry left without users has null data (D1 published none). PutEntries
  // allocates nothing it cannot do without (metadata.cc).
  std::erase(held, nullptr);
  return MetadataTable::Process().PutEntries(held);
}

namespace {

Result<Attachment> AttachList(std::vector<const Function*> functions, const Hooks& hooks,
                              std::shared_ptr<const FunctionTable::Snapshot> snapshot,
                              const std::string& what) {
  if (functions.empty()) return Status(Errc::kNotFound, what + " matches no instrumented function");
  return AttachDonated(&functions, hooks, std::move(snapshot));
}

std::shared_ptr<const FunctionTable::Snapshot> FreshSnapshot() {
  (void)FunctionTable::Process().Refresh();
  return FunctionTable::Process().snapshot();
}

// Finds functions by entry address. Consecutive addresses are usually
// consecutive functions of one module: the one after the last found is tried
// before a search.
class EntryFinder {
 public:
  explicit EntryFinder(const FunctionTable::Snapshot& snapshot) : snapshot_(snapshot) {}
  const Function* Find(uintptr_t entry) {
    if (module_ != nullptr && next_ < module_->functions.size() &&
        module_->functions[next_].entry == entry) {
      return &module_->functions[next_++];
    }
    const Module* m = snapshot_.FindModule(entry);
    const Function* f = m != nullptr ? m->FindByEntry(entry) : nullptr;
    if (f != nullptr) {
      module_ = m;
      next_ = static_cast<size_t>(f - m->functions.data()) + 1;
    }
    return f;
  }

 private:
  const FunctionTable::Snapshot& snapshot_;
  const Module* module_ = nullptr;
  size_t next_ = 0;
};

}  // namespace

Result<Attachment> AttachAddresses(std::span<const void* const> addresses, const Hooks& hooks) try {
  auto snapshot = FunctionTable::Process().snapshot();
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<const Function*> functions;
    functions.reserve(addresses.size());
    EntryFinder finder(*snapshot);
    for (const void* a : addresses) {
      const Function* f = finder.Find(reinterpret_cast<uintptr_t>(a));
      if (f == nullptr) break;
      functions.push_back(f);
    }
    if (functions.size() == addresses.size()) return AttachDonated(&functions, hooks, snapshot);
    snapshot = FreshSnapshot();  // a module loaded since the last scan?
  }
  for (const void* a : addresses) {
    if (snapshot->FindByEntry(reinterpret_cast<uintptr_t>(a)) == nullptr) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%p", a);
      return Status(Errc::kNotFound, std::string(buf) +
                                         " is not the entry of an instrumented function "
                                         "(`padhook list` shows them)");
    }
  }
  return Status(Errc::kNotFound, "function not found");
} catch (const std::bad_alloc&) {  // finding the functions: nothing was changed
  return OutOfMemory("attaching (nothing was attached)");
}

Result<Attachment> AttachAddress(const void* function, const Hooks& hooks) {
  return AttachAddresses(std::span<const void* const>(&function, 1), hooks);
}

Result<Attachment> AttachName(std::string_view name, const Hooks& hooks) try {
  auto snapshot = FreshSnapshot();
  return AttachList(snapshot->FindByName(name), hooks, snapshot,
                    "name '" + std::string(name) + "'");
} catch (const std::bad_alloc&) {  // finding the functions: nothing was changed
  return OutOfMemory("attaching (nothing was attached)");
}

Result<Attachment> AttachGlob(std::string_view pattern, const Hooks& hooks) try {
  auto snapshot = FreshSnapshot();
  return AttachList(snapshot->FindByGlob(pattern), hooks, snapshot,
                    "pattern '" + std::string(pattern) + "'");
} catch (const std::bad_alloc&) {  // finding the functions: nothing was changed
  return OutOfMemory("attaching (nothing was attached)");
}

}  // namespace padhook
