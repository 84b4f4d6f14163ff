// Fixture functions with layouts the metadata table must refuse.

// Padding too small for the 5-byte slot: 5 NOPs at the entry, none before.
extern "C" __attribute__((noinline, patchable_function_entry(5, 0))) int meta_no_padding(int x) {
  return x + 1;
}

// A function whose slot the tests corrupt, to play "someone else patched it".
extern "C" __attribute__((noinline)) int meta_victim(int x) { return x - 1; }
