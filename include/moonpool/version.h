/*
 * moonpool version: the version of the headers a program was compiled
 * against (macros) and of the library it runs with (mp_version()).
 *
 * The two can differ when a program built against one release runs with the
 * shared library of another; compare them to detect it:
 *
 *   if (strcmp(mp_version(), MP_VERSION_STRING) != 0) ...
 *
 * This header is the single source of the version: CMakeLists.txt reads the
 * three numbers below (the shared library's version and SONAME, moonpool.pc
 * and the CMake package are derived from them).
 *
 * Thread safety: mp_version is pure and may be called from any thread.
 */
#ifndef MOONPOOL_VERSION_H
#define MOONPOOL_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0

#define MP_VERSION_STR_(x) #x
#define MP_VERSION_XSTR_(x) MP_VERSION_STR_(x)
/* "MAJOR.MINOR.PATCH", e.g. "0.1.0". */
#define MP_VERSION_STRING                                                    \
    MP_VERSION_XSTR_(MP_VERSION_MAJOR) "." MP_VERSION_XSTR_(MP_VERSION_MINOR) \
    "." MP_VERSION_XSTR_(MP_VERSION_PATCH)
/* One integer that orders versions: MAJOR * 10000 + MINOR * 100 + PATCH. */
#define MP_VERSION_NUMBER \
    (MP_VERSION_MAJOR * 10000 + MP_VERSION_MINOR * 100 + MP_VERSION_PATCH)

/* The version of the library this program runs with, "MAJOR.MINOR.PATCH"
 * (the MP_VERSION_STRING the library was built with). Static string, never
 * NULL, never freed. */
const char *mp_version(void);

#ifdef __cplusplus
}
#endif
#endif
