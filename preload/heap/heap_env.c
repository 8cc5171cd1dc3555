// librsrmem-heap.so: how the engine loads its private heap without letting it read the
// environment.
//
// mimalloc reads its options from `environ` when it is loaded, and the engine loads it from its
// control thread, once the program is running: by then the program may be rewriting its
// environment on its own thread (bash leaves `environ` pointing to arrays it freed), so reading it
// there could crash the program. The engine dlopen()s this object with RTLD_DEEPBIND instead of
// libmimalloc.so.2 itself: mimalloc comes in as its dependency, and its symbols are looked up
// here first, so the `environ` it reads is this one, which is empty. The service's own MIMALLOC_*
// settings (meant for its allocator) no longer tune the engine's heap either.
//
// Never preloaded and never linked: it exports `environ` (only to what it loads itself) and
// depends on Debian's libmimalloc.so.2, an override build that would otherwise take over the
// process's malloc.
#include <mimalloc.h>

static char* no_variables[1];
char** environ = no_variables;

// A reference to mimalloc, so the linker keeps it as this object's dependency.
int rsr_heap_version(void) { return mi_version(); }
