// Many functions, called from 4,096 direct call sites in a random order:
// the seven patch models of gen.py, medians of 7 rounds (see ../README.md).
//   python3 gen.py N 4096 && gcc -O2 -o many main.c many.S && ./many 4096
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void drive_plain(long), drive_callent(long), drive_jmpent(long), drive_hijack(long), drive_jmpcall(long), drive_scent(long), drive_scexit(long);
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec*1e9+t.tv_nsec;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){ long K=atol(argv[1]); long reps=20000000/K; if(reps<1)reps=1;
 void (*d[7])(long)={drive_plain,drive_callent,drive_jmpent,drive_hijack,drive_jmpcall,drive_scent,drive_scexit};
 const char*n[7]={"plain","call entry, ret back (old entry-only)","jmp entry, pop+jmp back (new entry-only)","call entry, hijack (old exit)","jmp entry, call body (new exit)","stub calls tramp, ret, stub jmp *r11 (entry)","same, exit via rt_call (exit)"};
 double t[7][7];
 for(int r=0;r<7;r++) for(int k=0;k<7;k++){double s=now(); d[k](reps); t[k][r]=(now()-s)/(reps*K);}
 for(int k=0;k<7;k++){qsort(t[k],7,sizeof(double),cmp); printf("%-42s %6.2f ns/call\n",n[k],t[k][3]);} }
