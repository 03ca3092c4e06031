//! The directive comments of a testdata file (`//# key: value` in C, `## key: value` in
//! assembly): parsed, and checked against the known keys so that a misspelt one fails.

use libtest_mimic::Failed;
use std::path::Path;

/// Directive comments of a testdata file.
pub struct Directives(Vec<(String, String)>);

impl Directives {
    pub fn parse(source: &Path) -> Result<Directives, Failed> {
        let text = std::fs::read_to_string(source)
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        let directives = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let body = line
                    .strip_prefix("//#")
                    .or_else(|| line.strip_prefix("##"))?;
                let (key, value) = body.split_once(':')?;
                Some((key.trim().to_owned(), value.trim().to_owned()))
            })
            .collect::<Vec<(String, String)>>();
        // A misspelt directive would silently change what a test checks.
        const KNOWN: [&str; 11] = [
            "with",
            "archive",
            "libs",
            "cflags",
            "asflags",
            "args",
            "native-ldflags",
            "rjitlink-flags",
            "shared-library",
            "expect-error",
            "stdin",
        ];
        if let Some((key, _)) = directives
            .iter()
            .find(|(k, _)| !KNOWN.contains(&k.as_str()))
        {
            return Err(format!("{}: unknown directive `{key}`", source.display()).into());
        }
        Ok(Directives(directives))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn words(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}
