#!/bin/bash
# builds t_<cc>_<opt>[_vN] for gcc/clang, -O0/-O2, RT variants
set -e
cd "$(dirname "$0")"
for cc in gcc clang; do
  if [ $cc = gcc ]; then C=gcc; CXX=g++; else C=clang; CXX=clang++; fi
  for O in O0 O2; do
    for V in 1 2 3 4 5; do
      out=t_${cc}_${O}; [ $V = 1 ] || out=${out}_v$V
      $C -O2 -g -Wall -c pt.c -o obj_${cc}_${O}_pt.o
      $C -g -c -DRT_VARIANT=$V pt.S -o obj_${cc}_v${V}_S.o
      $CXX -$O -g -fpatchable-function-entry=5 -Wall -c t_main.cpp -o obj_${cc}_${O}_t.o
      $CXX -rdynamic -o $out obj_${cc}_${O}_t.o obj_${cc}_${O}_pt.o obj_${cc}_v${V}_S.o -lpthread -ldl
    done
  done
done
ls t_*
