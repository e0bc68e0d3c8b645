/* LD_PRELOAD shim for tests: fsync and fdatasync fail with EIO while the file named by
   $CAIRN_FAIL_FSYNC_WHEN exists, and work normally otherwise. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char *flag = getenv("CAIRN_FAIL_FSYNC_WHEN");
    return flag != NULL && access(flag, F_OK) == 0;
}

int fdatasync(int fd) {
    if (failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd) {
    if (failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
