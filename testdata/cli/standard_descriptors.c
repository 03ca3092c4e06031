// Reports on stderr which standard descriptors are open and the descriptor the next open
// gets: started with stdin and stdout closed, it must see them closed as natively, not the
// /dev/null the Rust runtime puts in their place (see the native behaviour trials).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    for (int fd = 0; fd < 3; fd++)
        dprintf(STDERR_FILENO, "fd %d: %s\n", fd, fcntl(fd, F_GETFD) == -1 ? "closed" : "open");
    dprintf(STDERR_FILENO, "open gives %d\n", open("/dev/null", O_RDONLY));
    return 0;
}
