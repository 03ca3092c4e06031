//! What the command line adds to the linker's messages: C++ names demangled (the mangled name
//! kept beside the symbol), the library that defines a well-known undefined symbol, and the
//! argument parser's errors in rjitlink's one-line form.

use rjitlink::UndefinedSymbol;

/// `name` demangled, if it is a mangled C++ name (`_Znwm` → `operator new(unsigned long)`).
pub fn demangle(name: &str) -> Option<String> {
    if !name.starts_with("_Z") {
        return None;
    }
    let symbol = cpp_demangle::Symbol::new(name.as_bytes()).ok()?;
    let options = cpp_demangle::DemangleOptions::new();
    symbol.demangle_with_options(&options).ok()
}

/// Every mangled C++ name quoted in `line` (between backquotes or single quotes) demangled:
/// a symbol in backquotes keeps its mangled name beside it, in parentheses, which is what
/// `nm` and the object show; a function name in single quotes is shown demangled only.
pub fn demangle_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find(['`', '\'']) {
        let quote = rest.as_bytes()[start];
        let closing = if quote == b'`' { '`' } else { '\'' };
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let Some(end) = rest.find(closing) else {
            continue;
        };
        let name = &rest[..end];
        match demangle(name) {
            Some(demangled) if quote == b'`' => {
                out.push_str(&demangled);
                out.push('`');
                out.push_str(" (");
                out.push_str(name);
                out.push(')');
            }
            Some(demangled) => {
                out.push_str(&demangled);
                out.push('\'');
            }
            None => {
                out.push_str(name);
                out.push(closing);
            }
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// libm's functions, each also with an `f` (float) and `l` (long double) suffix.
const LIBM: &[&str] = &[
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "exp",
    "exp2",
    "exp10",
    "expm1",
    "log",
    "log2",
    "log10",
    "log1p",
    "logb",
    "pow",
    "sqrt",
    "cbrt",
    "hypot",
    "floor",
    "ceil",
    "round",
    "trunc",
    "rint",
    "nearbyint",
    "lround",
    "llround",
    "lrint",
    "llrint",
    "fmod",
    "remainder",
    "remquo",
    "fmin",
    "fmax",
    "fdim",
    "fma",
    "frexp",
    "ldexp",
    "modf",
    "scalbn",
    "scalbln",
    "ilogb",
    "erf",
    "erfc",
    "tgamma",
    "lgamma",
    "nextafter",
    "nexttoward",
    "copysign",
    "nan",
    "sincos",
    "j0",
    "j1",
    "jn",
    "y0",
    "y1",
    "yn",
    "cexp",
    "clog",
    "cpow",
    "csqrt",
    "cabs",
    "carg",
];

/// The library that defines `symbol`, for the well-known ones: the `-l` option to add and
/// the library's name.
pub fn library_for(symbol: &str) -> Option<(&'static str, &'static str)> {
    let demangled = demangle(symbol).unwrap_or_default();
    let in_libm = LIBM
        .iter()
        .any(|f| symbol == *f || symbol.strip_prefix(f).is_some_and(|s| s == "f" || s == "l"));
    if in_libm {
        return Some(("-lm", "libm"));
    }
    let cxx_runtime = symbol.starts_with("__cxa_")
        || symbol.starts_with("__gxx_personality")
        || symbol == "__dynamic_cast"
        || [
            "std::",
            "operator new",
            "operator delete",
            "__cxxabiv1::",
            "__gnu_cxx::",
        ]
        .iter()
        .any(|prefix| demangled.starts_with(prefix))
        || [
            "typeinfo for ",
            "vtable for ",
            "typeinfo name for ",
            "VTT for ",
        ]
        .iter()
        .any(|kind| {
            demangled
                .strip_prefix(kind)
                .is_some_and(|of| of.starts_with("std::") || of.starts_with("__cxxabiv1::"))
        });
    if cxx_runtime {
        return Some(("-lstdc++", "libstdc++"));
    }
    let prefixed = |prefixes: &[&str]| prefixes.iter().any(|p| symbol.starts_with(p));
    if prefixed(&["pthread_"]) {
        return Some(("-lpthread", "libpthread"));
    }
    if matches!(
        symbol,
        "dlopen" | "dlsym" | "dlclose" | "dlerror" | "dladdr" | "dlvsym"
    ) {
        return Some(("-ldl", "libdl"));
    }
    if prefixed(&["deflate", "inflate", "gz", "zlib"])
        || matches!(
            symbol,
            "compress"
                | "compress2"
                | "compressBound"
                | "uncompress"
                | "uncompress2"
                | "crc32"
                | "adler32"
        )
    {
        return Some(("-lz", "libz"));
    }
    if prefixed(&["_Unwind_"]) {
        return Some(("-lgcc_s", "libgcc_s"));
    }
    if prefixed(&["__atomic_"]) {
        return Some(("-latomic", "libatomic"));
    }
    if matches!(symbol, "crypt" | "crypt_r") {
        return Some(("-lcrypt", "libcrypt"));
    }
    if prefixed(&["shm_open", "shm_unlink", "mq_", "timer_create", "aio_"]) {
        return Some(("-lrt", "librt"));
    }
    if matches!(symbol, "openpty" | "forkpty" | "login_tty") {
        return Some(("-lutil", "libutil"));
    }
    None
}

/// The line for one undefined symbol: demangled, with the function that refers to it and the
/// library that would define it.
pub fn undefined_line(undefined: &UndefinedSymbol) -> String {
    let mut line = demangle_line(&undefined.to_string());
    if let Some((option, library)) = library_for(&undefined.symbol) {
        line.push_str(&format!("; it is in {library}: add {option}"));
    }
    line
}

/// clap's error as one line: its message (its first paragraph, one line however clap wraps
/// it) and its tip, without the usage (`--help` shows that).
pub fn clap_error_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut paragraphs = text.split("\n\n");
    let message: Vec<&str> = paragraphs
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect();
    let mut line = message.join(" ");
    if let Some(rest) = line.strip_prefix("error: ") {
        line = rest.to_owned();
    }
    for paragraph in paragraphs {
        for tip in paragraph
            .lines()
            .filter_map(|l| l.trim().strip_prefix("tip: "))
        {
            line.push_str("; ");
            line.push_str(tip);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mangled_names_are_demangled_in_quotes() {
        assert_eq!(
            demangle_line("undefined symbol `_Znwm` (referenced by a.o in function '_Z1fv')"),
            "undefined symbol `operator new(unsigned long)` (_Znwm) (referenced by a.o in function 'f()')"
        );
        // Names that are not mangled, and unbalanced quotes, stay as they are.
        assert_eq!(demangle_line("`main` isn't `_Zbad"), "`main` isn't `_Zbad");
    }

    #[test]
    fn well_known_libraries() {
        assert_eq!(library_for("sqrt"), Some(("-lm", "libm")));
        assert_eq!(library_for("sinf"), Some(("-lm", "libm")));
        assert_eq!(library_for("_Znwm"), Some(("-lstdc++", "libstdc++")));
        assert_eq!(library_for("_ZSt4cout"), Some(("-lstdc++", "libstdc++")));
        assert_eq!(library_for("__cxa_throw"), Some(("-lstdc++", "libstdc++")));
        assert_eq!(library_for("deflateInit_"), Some(("-lz", "libz")));
        assert_eq!(library_for("_Z1fv"), None);
        assert_eq!(library_for("single"), None);
    }
}
