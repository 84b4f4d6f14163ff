// bench/tracer: an empty program, for the start-up cost of `padhook record`
// (built with padhook's flags) and of `uftrace record` (built with -pg).
int main() { return 0; }
