#!/bin/bash
# reproduces all results into results.txt
cd "$(dirname "$0")"; ./build.sh >/dev/null 2>&1
{
for b in t_gcc_O0 t_gcc_O2 t_clang_O0 t_clang_O2; do echo "### $b all"; ./$b all | grep -vE "^  ok"; done
for v in 2 3 4 5; do for b in t_gcc_O2_v$v t_clang_O2_v$v; do for t in exc bt cancel; do timeout 20 ./$b $t > o.txt 2>&1; echo "### $b $t rc=$? fails=$(grep -c FAIL o.txt)"; done; done; done
for b in t_gcc_O2 t_gcc_O2_v2 t_gcc_O2_v3 t_gcc_O2_v4 t_gcc_O2_v5; do echo "### gdb bt $b"; gdb -q -batch -ex 'break backtrace' -ex 'run bt' -ex bt --args ./$b 2>&1 | grep -E "^#"; done
for O in O0 O2; do gcc -$O -g -fpatchable-function-entry=5 -c t_cancel_c.c -o obj_c_$O.o && gcc -o t_cancel_c_$O obj_c_$O.o obj_gcc_O2_pt.o obj_gcc_v1_S.o -lpthread && echo "### t_cancel_c_$O" && ./t_cancel_c_$O; done
echo "### ulimit -s unlimited"; bash -c 'ulimit -s unlimited; ./t_gcc_O2 all | grep -E "RESULT|\[stacks\]"'
} > results.txt 2>&1
grep -E "RESULT|###" results.txt
