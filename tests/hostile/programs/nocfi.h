#pragma once
#include <stddef.h>
void* nocfi_alloc(size_t n);
