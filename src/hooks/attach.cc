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
//
// Attach(functions, hooks), under g_attach_mutex
//   T1. Get every function's metadata entry (one batch; all or nothing).
//   T2. For each function publish a new block = old block + this client.
//       The old block is retired, not freed (readers may hold it).
//   T3. Patch every site that was not patched yet (one ChangeSites batch: one
//       synchronization round for all). When T3 returns, every call on every
//       thread runs the new handlers.
//   On failure in T3: publish the old blocks back, wait a grace period, free
//   the new blocks, put the entries: nothing remains changed.
//
// Detach(attachment), under g_attach_mutex
//   D1. For each function publish a block without this client (or none).
//   D2. Unpatch the sites that have no handler left (one ChangeSites batch).
//   D3. sync::Synchronize(): every thread that could have read an old block
//       has left its read section, so no handler of this client is running
//       or will run (a thread entering the trampoline from now on reads the
//       new block, or finds no metadata).
//   D4. Free the retired blocks; put the entries of unpatched functions.
//   A thread that executed a site's call before D2 but reaches the dispatcher
//   only after D4 finds the slot retracted (or a new entry) and runs nothing
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
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "arch.h"
#include "hooks/handler_block.h"
#include "hooks/shadow_stack.h"
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
class BlockSwap {
 public:
  BlockSwap(const internal::AttachmentState* add, const internal::AttachmentState* remove)
      : add_(add), remove_(remove) {}
  // The new block for a function whose current block is `old` (made once per
  // distinct `old`); counts the function on it.
  HandlerBlock* Replace(HandlerBlock* old) {
    auto it = made_.find(old);
    if (it == made_.end()) it = made_.emplace(old, HandlerBlock::Make(old, add_, remove_)).first;
    HandlerBlock* fresh = it->second;
    if (fresh != nullptr) ++fresh->refs;
    if (old != nullptr) released_.push_back(old);
    return fresh;
  }
  // After publishing: drop the functions' references to their old blocks.
  void Commit(std::vector<HandlerBlock*>* retired) {
    for (HandlerBlock* old : released_) {
      if (--old->refs == 0) retired->push_back(old);
    }
  }
  // Instead of Commit, when the new blocks were published back: free them.
  void Abandon() {
    for (auto& [old, fresh] : made_) {
      if (fresh != nullptr) HandlerBlock::Free(fresh);
    }
  }

 private:
  const internal::AttachmentState* add_;
  const internal::AttachmentState* remove_;
  std::map<HandlerBlock*, HandlerBlock*> made_;
  std::vector<HandlerBlock*> released_;
};

std::mutex g_attach_mutex;             // serializes attach and detach
std::vector<HandlerBlock*> g_retired;  // under g_attach_mutex; freed after a grace period

void FreeRetiredLocked() {
  for (HandlerBlock* b : g_retired) HandlerBlock::Free(b);
  g_retired.clear();
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

Result<Attachment> AttachFunctions(std::span<const Function* const> requested, const Hooks& hooks,
                                   std::shared_ptr<const FunctionTable::Snapshot> snapshot) {
  if (hooks.on_entry == nullptr && hooks.on_exit == nullptr) {
    return Status(Errc::kInvalidArgument, "no handler given (on_entry and on_exit are both null)");
  }
  if (hooks.on_exit != nullptr) EnsureShadowKey();  // before any call can push a shadow frame
  if (requested.empty()) return Status(Errc::kNotFound, "no function to attach to");
  if (sync::InReadSection()) {
    return Status(Errc::kBusy, "attach called from inside a handler");
  }
  auto state = std::make_unique<internal::AttachmentState>();
  state->hooks = hooks;
  state->snapshot = std::move(snapshot);
  state->functions.assign(requested.begin(), requested.end());
  std::sort(state->functions.begin(), state->functions.end(),
            [](const Function* a, const Function* b) { return a->entry < b->entry; });
  state->functions.erase(
      std::unique(state->functions.begin(), state->functions.end(),
                  [](const Function* a, const Function* b) { return a->entry == b->entry; }),
      state->functions.end());

  std::lock_guard<std::mutex> lock(g_attach_mutex);
  MetadataTable& table = MetadataTable::Process();
  Result<std::vector<MetaEntry*>> entries = table.GetMany(state->functions);  // T1
  if (!entries.ok()) return entries.status();

  std::vector<HandlerBlock*> old_blocks;  // T2
  std::vector<patch::SiteChange> changes;
  BlockSwap swap(state.get(), nullptr);
  for (size_t i = 0; i < state->functions.size(); ++i) {
    MetaEntry* e = (*entries)[i];
    HandlerBlock* old = BlockOf(e);
    old_blocks.push_back(old);
    e->data.store(swap.Replace(old), std::memory_order_release);
    if (old == nullptr) changes.push_back({state->functions[i], /*to_call=*/true});
  }
  if (Status patched = patch::ChangeSites(changes); !patched.ok()) {  // T3
    for (size_t i = 0; i < state->functions.size(); ++i) {
      (*entries)[i]->data.store(old_blocks[i], std::memory_order_release);
    }
    (void)sync::Synchronize();
    swap.Abandon();
    (void)table.PutMany(state->functions);
    return patched;
  }
  swap.Commit(&g_retired);
  return Attachment(state.release());
}

Status Attachment::Detach() {
  if (state_ == nullptr) return Status::Ok();
  if (sync::InReadSection()) return Status(Errc::kBusy, "detach called from inside a handler");
  std::unique_ptr<internal::AttachmentState> state(state_);
  state_ = nullptr;
  std::lock_guard<std::mutex> lock(g_attach_mutex);
  std::vector<patch::SiteChange> changes;  // D1
  BlockSwap swap(nullptr, state.get());
  for (const Function* f : state->functions) {
    MetaEntry* e = MetadataTableAccess::Lookup(f->entry);
    if (e == nullptr) continue;  // cannot happen while attached; be safe
    HandlerBlock* fresh = swap.Replace(BlockOf(e));
    e->data.store(fresh, std::memory_order_release);
    if (fresh == nullptr) changes.push_back({f, /*to_call=*/false});
  }
  swap.Commit(&g_retired);
  Status status = patch::ChangeSites(changes);  // D2
  (void)sync::Synchronize();                    // D3
  FreeRetiredLocked();                          // D4
  if (!status.ok()) {
    // The handlers are gone (D1, D3); the sites stay patched and keep their
    // metadata, running the trampoline with no handler.
    return status;
  }
  // Everyone's users: the entries stay while other clients hold them.
  std::vector<const Function*> all(state->functions.begin(), state->functions.end());
  return MetadataTable::Process().PutMany(all);
}

namespace {

Result<Attachment> AttachList(std::vector<const Function*> functions, const Hooks& hooks,
                              std::shared_ptr<const FunctionTable::Snapshot> snapshot,
                              const std::string& what) {
  if (functions.empty()) return Status(Errc::kNotFound, what + " matches no instrumented function");
  return AttachFunctions(functions, hooks, std::move(snapshot));
}

std::shared_ptr<const FunctionTable::Snapshot> FreshSnapshot() {
  (void)FunctionTable::Process().Refresh();
  return FunctionTable::Process().snapshot();
}

}  // namespace

Result<Attachment> AttachAddresses(std::span<const void* const> addresses, const Hooks& hooks) {
  auto snapshot = FunctionTable::Process().snapshot();
  std::vector<const Function*> functions;
  for (int attempt = 0; attempt < 2; ++attempt) {
    functions.clear();
    bool all = true;
    for (const void* a : addresses) {
      const Function* f = snapshot->FindByEntry(reinterpret_cast<uintptr_t>(a));
      if (f == nullptr) {
        all = false;
        break;
      }
      functions.push_back(f);
    }
    if (all) return AttachFunctions(functions, hooks, snapshot);
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
}

Result<Attachment> AttachAddress(const void* function, const Hooks& hooks) {
  return AttachAddresses(std::span<const void* const>(&function, 1), hooks);
}

Result<Attachment> AttachName(std::string_view name, const Hooks& hooks) {
  auto snapshot = FreshSnapshot();
  return AttachList(snapshot->FindByName(name), hooks, snapshot,
                    "name '" + std::string(name) + "'");
}

Result<Attachment> AttachGlob(std::string_view pattern, const Hooks& hooks) {
  auto snapshot = FreshSnapshot();
  return AttachList(snapshot->FindByGlob(pattern), hooks, snapshot,
                    "pattern '" + std::string(pattern) + "'");
}

}  // namespace padhook
