# Sourced (from the repository root) by the integration scripts that drive
# libfleetmcp from a Check program of their own:
#   fm_check_driver SRC BIN
# compiles SRC into BIN against $BUILD/libfleetmcp.a (BUILD: build) with
# the Makefile's package list (make print-pkgs, so a library added there
# is linked here too) and Check, the Makefile's warnings as errors, and
# EXTRA_CFLAGS / EXTRA_LDFLAGS (an ASan library wants its flags).
fm_check_driver() {
    local pkgs
    pkgs="$(make -s --no-print-directory print-pkgs) check"
    mkdir -p "$(dirname "$2")"
    # shellcheck disable=SC2046,SC2086 # the flag lists split into words
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-unused-parameter -Iinclude -g ${EXTRA_CFLAGS:-} \
        -o "$2" "$1" "${BUILD:-build}/libfleetmcp.a" ${EXTRA_LDFLAGS:-} \
        $(pkg-config --cflags --libs $pkgs) -ldl -lpthread -lm
}
