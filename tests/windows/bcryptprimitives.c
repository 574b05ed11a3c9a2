/*
 * TEST SCAFFOLDING ONLY: a stand-in for Windows' bcryptprimitives.dll, which Wine 8.0 lacks.
 *
 * Rust's standard library on Windows gets its random numbers (HashMap seeds) from
 * ProcessPrng in bcryptprimitives.dll, so buildcat.exe does not even load under a Wine
 * without it. This DLL forwards ProcessPrng to RtlGenRandom (SystemFunction036 in
 * advapi32), which Wine has. The end-to-end test (tests/tests/it/windows.rs) builds it
 * with mingw and puts it only in the test's own Wine prefix. It is never shipped: real
 * Windows (10 and later) has the real one.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Fills `data` with `length` random bytes; RtlGenRandom takes at most a ULONG at a time. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
