//! An incremental, REPL-like session: each cell is compiled and linked on its own, resolving
//! against the cells before it; an expression is linked, called and freed; a redefinition
//! shadows the earlier one until it is freed.
//!
//! `cargo run -p rjitlink --example repl` runs a short demonstration; with `-` it reads cells
//! from standard input, one a line:
//!
//! ```text
//! def int x = 5;                       define (a variable or a function)
//! def int sq(int a) { return a * a; }
//! sq(x) + 1                            evaluate (a C expression, as long)
//! free 2                               free what cell 2 defined
//! ```

use rjitlink::{Session, Unit, UnitId};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

/// The session and what later cells need to see of earlier ones.
struct Repl {
    session: Session,
    /// Declarations of every definition made so far, in order, by the cell that made it.
    declarations: Vec<(UnitId, String)>,
    /// The unit each definition cell linked, by cell number.
    units: std::collections::HashMap<u32, UnitId>,
    cells: u32,
}

/// The declaration that lets later cells use `definition`: a function's signature, or a
/// variable as `extern`.
fn declaration(definition: &str) -> String {
    let definition = definition.trim();
    match (definition.find('{'), definition.find('=')) {
        (Some(brace), equals) if equals.is_none_or(|e| brace < e) => {
            format!("{};", definition[..brace].trim())
        }
        (_, Some(equals)) => format!("extern {};", definition[..equals].trim()),
        _ => format!("extern {definition}"),
    }
}

/// `source` compiled by cc into an object held in memory (the assembler writes a file, which
/// is read back and removed).
fn compile(source: &str) -> Result<Vec<u8>, String> {
    let path = std::env::temp_dir().join(format!("rjitlink-repl-{}.o", std::process::id()));
    let mut cc = Command::new("cc")
        .args(["-c", "-O1", "-x", "c", "-", "-o"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    cc.stdin
        .take()
        .expect("piped")
        .write_all(source.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = cc.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let object = std::fs::read(&path).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    Ok(object)
}

/// What a cell did.
#[derive(Debug, PartialEq)]
enum Outcome {
    Defined(UnitId),
    Value(i64),
    Freed,
}

impl Repl {
    fn prelude(&self) -> String {
        let mut prelude = String::new();
        for (_, declaration) in &self.declarations {
            prelude.push_str(declaration);
            prelude.push('\n');
        }
        prelude
    }

    fn cell(&mut self, line: &str) -> Result<Outcome, String> {
        self.cells += 1;
        let cell = self.cells;
        if let Some(number) = line.strip_prefix("free ") {
            let number: u32 = number.trim().parse().map_err(|_| "free N")?;
            let id = self
                .units
                .remove(&number)
                .ok_or(format!("cell {number} defined nothing live"))?;
            self.session.free(id).map_err(|e| e.message())?;
            self.declarations.retain(|(unit, _)| *unit != id);
            return Ok(Outcome::Freed);
        }
        if let Some(definition) = line.strip_prefix("def ") {
            let object = compile(&format!("{}{definition}\n", self.prelude()))?;
            let unit = Unit::new().bytes(format!("cell{cell}.o"), object);
            let linked = self.session.link(&unit).map_err(|e| e.message())?;
            self.declarations.push((linked.id, declaration(definition)));
            self.units.insert(cell, linked.id);
            return Ok(Outcome::Defined(linked.id));
        }
        let name = format!("cell{cell}");
        let source = format!(
            "{}long {name}(void) {{ return (long)({line}); }}\n",
            self.prelude()
        );
        let object = compile(&source)?;
        let unit = self
            .session
            .link(&Unit::new().bytes(format!("{name}.o"), object))
            .map_err(|e| e.message())?;
        // SAFETY: `long cellN(void)` as generated; its unit is freed only after the call.
        let function: extern "C" fn() -> i64 =
            unsafe { self.session.lookup_fn(&name) }.map_err(|e| e.message())?;
        let value = function();
        self.session.free(unit.id).map_err(|e| e.message())?;
        Ok(Outcome::Value(value))
    }
}

/// The demonstration: each cell with what it must give.
const DEMO: &[(&str, Option<i64>)] = &[
    ("def int x = 5;", None),
    ("def int sq(int a) { return a * a; }", None),
    ("sq(x) + 1", Some(26)),
    ("def int sq(int a) { return a * a * a; }", None),
    ("sq(x) + 1", Some(126)),
    ("free 4", None),
    ("sq(x) + 1", Some(26)),
    (
        "def long total(int n) { long t = 0; for (int i = 1; i <= n; i++) t += sq(i); return t; }",
        None,
    ),
    ("total(x)", Some(55)),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut repl = Repl {
        session: Session::builder().threads(1).build()?,
        declarations: Vec::new(),
        units: Default::default(),
        cells: 0,
    };
    if std::env::args().nth(1).as_deref() == Some("-") {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match repl.cell(line.trim()) {
                Ok(Outcome::Value(value)) => println!("{value}"),
                Ok(Outcome::Defined(_)) => println!("defined (cell {})", repl.cells),
                Ok(Outcome::Freed) => println!("freed"),
                Err(message) => println!("error: {message}"),
            }
        }
        return Ok(());
    }
    for &(line, expected) in DEMO {
        let outcome = repl.cell(line)?;
        println!("> {line}\n  {outcome:?}");
        if let Some(expected) = expected {
            assert_eq!(outcome, Outcome::Value(expected), "{line}");
        }
    }
    // Expressions leave nothing behind: the definitions alone are live.
    assert_eq!(repl.session.live_units(), repl.declarations.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        super::main().unwrap();
    }

    #[test]
    fn declarations_of_definitions() {
        assert_eq!(super::declaration("int x = 5;"), "extern int x;");
        assert_eq!(
            super::declaration("int f(int a) { int b = a; return b; }"),
            "int f(int a);"
        );
    }
}
