//! `include/rjitlink.h` cannot drift from the library: the functions it declares are exactly
//! the `rjitlink_*` functions `librjitlink.so` exports, each with the parameter and return
//! types its Rust definition has (mapped to C), and its constants have the library's values.
//!
//! Checked rather than generated (cbindgen): the header is written for C readers — grouped,
//! commented, with C names for the handles — and this test keeps it honest without a
//! build-time tool.

mod common;

use object::{Object, ObjectSymbol};
use std::collections::BTreeMap;
use std::path::Path;

/// C declarations as `name -> (return type, parameter types)`, each type normalized.
type Signatures = BTreeMap<String, (String, Vec<String>)>;

/// Types spelled one way: tokens separated by single spaces, `*` a token of its own.
fn normalize(c_type: &str) -> String {
    c_type
        .replace('*', " * ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("closed comment");
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// The header's function declarations.
fn header_functions(header: &str) -> Signatures {
    let text = strip_comments(header);
    let mut functions = Signatures::new();
    // Declarations end with `);`; everything else (macros, typedefs) has no `rjitlink_...(`.
    for declaration in text.split(';') {
        let declaration = declaration
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        // The name is the identifier just before the first parenthesis.
        let Some(paren) = declaration.find('(') else {
            continue;
        };
        let head = declaration[..paren].trim_end();
        let open = head
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = head[open..].to_owned();
        if !name.starts_with("rjitlink_") {
            continue;
        }
        let before = declaration[..open].replace('{', " ");
        // What stands before the name: after any `extern "C" {` of C++.
        let return_type = before.rsplit('}').next().unwrap_or(&before);
        let return_type = return_type
            .rsplit("\"C\"")
            .next()
            .unwrap_or(return_type)
            .trim();
        let params_text = &declaration[paren + 1..declaration.rfind(')').unwrap()];
        let params = if params_text.trim() == "void" {
            Vec::new()
        } else {
            params_text
                .split(',')
                .map(|param| {
                    // Drop the parameter's name: the last identifier.
                    let param = param.trim();
                    let cut = param
                        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .map_or(0, |i| i + 1);
                    normalize(&param[..cut])
                })
                .collect()
        };
        functions.insert(name, (normalize(return_type), params));
    }
    functions
}

/// A Rust FFI type as C spells it in the header.
fn c_type(rust: &str) -> String {
    let rust = rust.trim();
    let pointer = |rest: &str, constness: &str| {
        let inner = c_type(rest);
        if constness == "const" {
            // `*const T` is `const T *` — and for a pointer T, `T const *`, which C writes
            // after the inner star: `const char *const *`.
            if inner.ends_with('*') {
                format!("{inner} const *")
            } else {
                format!("const {inner} *")
            }
        } else {
            format!("{inner} *")
        }
    };
    let c = if let Some(rest) = rust.strip_prefix("*const ") {
        pointer(rest, "const")
    } else if let Some(rest) = rust.strip_prefix("*mut ") {
        pointer(rest, "mut")
    } else {
        match rust {
            "c_int" => "int",
            "c_char" => "char",
            "c_void" => "void",
            "u64" => "uint64_t",
            "u32" => "uint32_t",
            "usize" => "size_t",
            "RjitlinkOptions" => "rjitlink_options",
            "RjitlinkSession" => "rjitlink_session",
            "RjitlinkUnit" => "rjitlink_unit",
            other => panic!("no C spelling for the Rust type `{other}`: add it here"),
        }
        .to_owned()
    };
    normalize(&c)
}

/// The library's exported functions, from its Rust source, as C signatures.
fn rust_functions(source: &str) -> Signatures {
    let mut functions = Signatures::new();
    let mut rest = source;
    while let Some(at) = rest.find("extern \"C\" fn rjitlink_") {
        let after = &rest[at + "extern \"C\" fn ".len()..];
        let open = after.find('(').unwrap();
        let name = after[..open].to_owned();
        // Parameters hold no parentheses; the return type ends at the body's brace.
        let close = open + after[open..].find(')').unwrap();
        let params: Vec<String> = after[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|param| !param.is_empty())
            .map(|param| c_type(param.split_once(':').expect("name: type").1))
            .collect();
        let tail = &after[close + 1..];
        let body = tail.find('{').unwrap();
        let return_type = match tail[..body].trim().strip_prefix("->") {
            Some(rust) => c_type(rust),
            None => "void".to_owned(),
        };
        functions.insert(name, (return_type, params));
        rest = &after[close..];
    }
    functions
}

fn header_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rjitlink.h"))
        .unwrap()
}

#[test]
fn header_declares_what_the_library_exports() {
    let library = std::fs::read(common::library_dir().join("librjitlink.so")).unwrap();
    let file = object::File::parse(&*library).unwrap();
    let exported: Vec<String> = file
        .dynamic_symbols()
        .filter(|symbol| symbol.is_definition() && symbol.is_global())
        .filter_map(|symbol| symbol.name().ok().map(str::to_owned))
        .filter(|name| name.starts_with("rjitlink_"))
        .collect();
    let declared = header_functions(&header_text());
    let mut exported_sorted = exported.clone();
    exported_sorted.sort();
    let declared_names: Vec<String> = declared.keys().cloned().collect();
    assert_eq!(
        exported_sorted, declared_names,
        "exported (left) and declared (right) differ"
    );
    assert!(declared.len() >= 25, "the parser found {declared:?}");
}

#[test]
fn header_signatures_match_the_rust_definitions() {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let rust = rust_functions(&source);
    let header = header_functions(&header_text());
    assert_eq!(
        rust.keys().collect::<Vec<_>>(),
        header.keys().collect::<Vec<_>>()
    );
    for (name, signature) in &rust {
        assert_eq!(
            signature, &header[name],
            "{name}: Rust (left) and header (right)"
        );
    }
}

#[test]
fn header_constants_match_the_library() {
    let header = header_text();
    let value = |name: &str| -> i64 {
        let line = header
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} is not defined in the header"));
        let text = line.split_whitespace().nth(2).unwrap();
        text.trim_matches(|c| c == '(' || c == ')')
            .trim_end_matches('u')
            .parse()
            .unwrap()
    };
    // The library's values, from its source (a cdylib has no Rust API to import them from).
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let rust = |path: &str| -> i64 {
        let (module, name) = path.rsplit_once("::").unwrap_or(("", path));
        let scope = if module.is_empty() {
            source.as_str()
        } else {
            &source[source.find(&format!("mod {module} {{")).unwrap()..]
        };
        let at = scope.find(&format!("const {name}: ")).unwrap();
        let line = scope[at..].lines().next().unwrap();
        line.rsplit('=')
            .next()
            .unwrap()
            .trim()
            .trim_end_matches(';')
            .parse()
            .unwrap()
    };
    let pairs = [
        ("RJITLINK_OK", "RJITLINK_OK"),
        ("RJITLINK_ERROR", "RJITLINK_ERROR"),
        ("RJITLINK_ERROR_NONE", "kind::NONE"),
        ("RJITLINK_ERROR_LINK", "kind::LINK"),
        ("RJITLINK_ERROR_UNDEFINED", "kind::UNDEFINED"),
        ("RJITLINK_ERROR_TARGET", "kind::TARGET"),
        ("RJITLINK_ERROR_MEMORY", "kind::MEMORY"),
        ("RJITLINK_ERROR_NOT_FOUND", "kind::NOT_FOUND"),
        ("RJITLINK_ERROR_ARGUMENT", "kind::ARGUMENT"),
        ("RJITLINK_ERROR_IN_PROCESS_ONLY", "kind::IN_PROCESS_ONLY"),
        ("RJITLINK_ERROR_INTERNAL", "kind::INTERNAL"),
        ("RJITLINK_PLUGIN_EH_FRAMES", "RJITLINK_PLUGIN_EH_FRAMES"),
        (
            "RJITLINK_PLUGIN_STATIC_DESTRUCTORS",
            "RJITLINK_PLUGIN_STATIC_DESTRUCTORS",
        ),
        (
            "RJITLINK_PLUGIN_EXECUTABLE_STACK",
            "RJITLINK_PLUGIN_EXECUTABLE_STACK",
        ),
        ("RJITLINK_PLUGIN_DEBUGGER", "RJITLINK_PLUGIN_DEBUGGER"),
        (
            "RJITLINK_PLUGIN_CRASH_REPORTS",
            "RJITLINK_PLUGIN_CRASH_REPORTS",
        ),
        ("RJITLINK_PLUGIN_PERF_MAP", "RJITLINK_PLUGIN_PERF_MAP"),
        ("RJITLINK_PLUGIN_JITDUMP", "RJITLINK_PLUGIN_JITDUMP"),
        ("RJITLINK_PLUGINS_DEFAULT", "RJITLINK_PLUGINS_DEFAULT"),
    ];
    for (c, rust_name) in pairs {
        assert_eq!(value(c), rust(rust_name), "{c} and {rust_name}");
    }
}

#[test]
fn parsers_see_a_changed_signature() {
    // The check is only as good as its parsers: a parameter changed on one side is seen.
    let header = header_functions("int rjitlink_x(rjitlink_session *s, uint64_t unit);\n");
    let rust = rust_functions(
        "pub unsafe extern \"C\" fn rjitlink_x(s: *mut RjitlinkSession, unit: u32) -> c_int {",
    );
    assert_eq!(header["rjitlink_x"].1[0], rust["rjitlink_x"].1[0]);
    assert_ne!(header, rust);
    let header = header_functions("int f(void);\nconst char *rjitlink_y(const char *const *argv);");
    let rust =
        rust_functions("extern \"C\" fn rjitlink_y(argv: *const *const c_char) -> *const c_char {");
    assert_eq!(header, rust);
}
