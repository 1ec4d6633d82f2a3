CMakeFiles/mp_core.dir/src/util/status.c.o: /work/rt/src/util/status.c \
 /usr/include/stdc-predef.h /work/rt/include/moonpool/status.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h
