// src/loader_events.h — what the dynamic loader has done so far.
#pragma once

#include <link.h>

#include <cstddef>

namespace padhook {

// How many objects the loader has unloaded since the process started
// (glibc's dl_phdr_info::dlpi_subs; 0 when the loader does not count). A
// change means a module may have gone, and another may be at its address.
inline unsigned long long ModuleUnloads() {
  unsigned long long subs = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t size, void* data) -> int {
        if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
          *static_cast<unsigned long long*>(data) = info->dlpi_subs;
        }
        return 1;  // the counters are the same in every callback: one is enough
      },
      &subs);
  return subs;
}

}  // namespace padhook
