#pragma once
#ifdef __cplusplus
extern "C" {
#endif
/* Calls f(arg) through two frames that have no call-frame information. */
void nocfi_outer(void (*f)(void*), void* arg);
#ifdef __cplusplus
}
#endif
