//! BitTornado's command-line syntax, for the multicall aliases (`bttrack`, `btmakemetafile`, ...).
//!
//! BitTornado's `parseargs`: every option is `--name value` (always with a value; no boolean flags); anything not
//! starting with `--` is positional; the value's type follows the default's type (int, float or string); a repeated
//! option keeps the last value; a default of `None` makes the option required. Error messages are BitTornado's own,
//! so scripts written against it see the same text.

use std::collections::BTreeMap;
use std::fmt;

/// An option's default, which also fixes the type of its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    Int(i64),
    Float(f64),
    Str(&'static str),
    /// No default: the option must be given.
    Required,
}

/// One option: `--name`, its default and its help text.
#[derive(Debug, Clone)]
pub struct OptionDef {
    pub name: &'static str,
    pub default: Default,
    pub help: &'static str,
}

/// A parsed option value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for OptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptValue::Int(i) => write!(f, "{i}"),
            OptValue::Float(x) => write!(f, "{x}"),
            OptValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// The result of a successful parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub options: BTreeMap<&'static str, OptValue>,
    pub positional: Vec<String>,
}

impl Parsed {
    /// The integer value of an option declared with an integer default. Panics on a programming error (an
    /// undeclared name or a different type), never on user input.
    pub fn int(&self, name: &str) -> i64 {
        match self.options.get(name) {
            Some(OptValue::Int(i)) => *i,
            other => panic!("option --{name} is not a declared integer option: {other:?}"),
        }
    }

    pub fn float(&self, name: &str) -> f64 {
        match self.options.get(name) {
            Some(OptValue::Float(x)) => *x,
            other => panic!("option --{name} is not a declared float option: {other:?}"),
        }
    }

    pub fn str(&self, name: &str) -> &str {
        match self.options.get(name) {
            Some(OptValue::Str(s)) => s,
            other => panic!("option --{name} is not a declared string option: {other:?}"),
        }
    }
}

/// A usage error, worded as BitTornado words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses `args` against `defs`. `min_args`/`max_args` bound the positional arguments.
pub fn parse(
    args: &[String],
    defs: &[OptionDef],
    min_args: Option<usize>,
    max_args: Option<usize>,
) -> Result<Parsed, UsageError> {
    let mut options: BTreeMap<&'static str, Option<OptValue>> = defs
        .iter()
        .map(|d| {
            let v = match d.default {
                Default::Int(i) => Some(OptValue::Int(i)),
                Default::Float(x) => Some(OptValue::Float(x)),
                Default::Str(s) => Some(OptValue::Str(s.to_string())),
                Default::Required => None,
            };
            (d.name, v)
        })
        .collect();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(key) = arg.strip_prefix("--") else {
            positional.push(arg.clone());
            i += 1;
            continue;
        };
        let Some(value) = args.get(i + 1) else {
            return Err(UsageError(
                "parameter passed in at end with no value".into(),
            ));
        };
        i += 2;
        let def = defs
            .iter()
            .find(|d| d.name == key)
            .ok_or_else(|| UsageError(format!("unknown key --{key}")))?;
        let parsed = match def.default {
            Default::Int(_) => value
                .trim()
                .parse::<i64>()
                .map(OptValue::Int)
                .map_err(|e| UsageError(format!("wrong format of --{key} - {e}")))?,
            Default::Float(_) => value
                .trim()
                .parse::<f64>()
                .map(OptValue::Float)
                .map_err(|e| UsageError(format!("wrong format of --{key} - {e}")))?,
            Default::Str(_) | Default::Required => OptValue::Str(value.clone()),
        };
        options.insert(def.name, Some(parsed));
    }
    let mut out = BTreeMap::new();
    for def in defs {
        match options.remove(def.name).flatten() {
            Some(v) => {
                out.insert(def.name, v);
            }
            None => return Err(UsageError(format!("Option --{} is required.", def.name))),
        }
    }
    if let Some(min) = min_args {
        if positional.len() < min {
            return Err(UsageError(format!("Must supply at least {min} args.")));
        }
    }
    if let Some(max) = max_args {
        if positional.len() > max {
            return Err(UsageError(format!("Too many args - {max} max.")));
        }
    }
    Ok(Parsed {
        options: out,
        positional,
    })
}

/// BitTornado's option listing (`formatDefinitions`): `--name <arg>`, then the help wrapped at an indent of 10 in 80
/// columns, with ` (defaults to <value>)` appended when there is a default.
pub fn format_definitions(defs: &[OptionDef]) -> String {
    let mut out = String::new();
    for def in defs {
        out.push_str(&format!("--{} <arg>\n", def.name));
        let mut doc = def.help.to_string();
        match &def.default {
            Default::Int(i) => doc.push_str(&format!(" (defaults to {i})")),
            Default::Float(x) => doc.push_str(&format!(" (defaults to {})", python_float(*x))),
            Default::Str(s) => doc.push_str(&format!(" (defaults to '{s}')")),
            Default::Required => {}
        }
        out.push_str(&split_line(&doc, 80, 10));
        out.push_str("\n\n");
    }
    out
}

/// Python's repr of a float: always with a decimal point.
fn python_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// Word-wraps `line` the way BitTornado's `splitLine` does.
fn split_line(line: &str, cols: usize, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let width = cols - (indent + 1);
    let mut out = String::new();
    let mut used = 0usize;
    for (n, word) in line.split_whitespace().enumerate() {
        if n == 0 {
            out.push_str(&pad);
            out.push_str(word);
            used = word.len();
        } else if used + word.len() >= width {
            out.push('\n');
            out.push_str(&pad);
            out.push_str(word);
            used = word.len();
        } else {
            out.push(' ');
            out.push_str(word);
            used += word.len() + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<OptionDef> {
        vec![
            OptionDef {
                name: "a",
                default: Default::Str("x"),
                help: "",
            },
            OptionDef {
                name: "b",
                default: Default::Int(1),
                help: "",
            },
            OptionDef {
                name: "c",
                default: Default::Float(2.3),
                help: "",
            },
        ]
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// BitTornado's own `test_parseargs` assertions.
    #[test]
    fn bittornado_vectors() {
        let p = parse(
            &s(&["d", "--a", "pq", "e", "--b", "3", "--c", "4.5", "f"]),
            &defs(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(p.str("a"), "pq");
        assert_eq!(p.int("b"), 3);
        assert_eq!(p.float("c"), 4.5);
        assert_eq!(p.positional, s(&["d", "e", "f"]));

        let p = parse(&s(&["--a", "x", "--a", "y"]), &defs(), None, None).unwrap();
        assert_eq!(p.str("a"), "y");

        let err = |args: &[&str], min, max| parse(&s(args), &defs(), min, max).unwrap_err().0;
        assert_eq!(err(&["--z", "x"], None, None), "unknown key --z");
        assert_eq!(
            err(&["--a"], None, None),
            "parameter passed in at end with no value"
        );
        assert_eq!(err(&[], Some(1), Some(2)), "Must supply at least 1 args.");
        assert_eq!(
            err(&["x", "y", "z"], Some(1), Some(2)),
            "Too many args - 2 max."
        );
        assert!(err(&["--b", "2.0"], None, None).starts_with("wrong format of --b - "));
        assert!(err(&["--c", "z"], None, None).starts_with("wrong format of --c - "));
        assert_eq!(
            parse(&s(&["x", "y"]), &defs(), Some(1), Some(2))
                .unwrap()
                .positional,
            s(&["x", "y"])
        );

        let required = [OptionDef {
            name: "dfile",
            default: Default::Required,
            help: "",
        }];
        assert_eq!(
            parse(&[], &required, None, None).unwrap_err().0,
            "Option --dfile is required."
        );
    }

    #[test]
    fn formats_definitions_like_bittornado() {
        let defs = [
            OptionDef {
                name: "port",
                default: Default::Int(80),
                help: "Port to listen on.",
            },
            OptionDef {
                name: "dfile",
                default: Default::Required,
                help: "file to store recent downloader info in",
            },
            OptionDef {
                name: "bind",
                default: Default::Str(""),
                help: "comma-separated list of ips/hostnames to bind to locally, with a rather long description that wraps",
            },
        ];
        let text = format_definitions(&defs);
        assert!(text.starts_with("--port <arg>\n          Port to listen on. (defaults to 80)\n\n"));
        assert!(
            text.contains("--dfile <arg>\n          file to store recent downloader info in\n\n")
        );
        assert!(text.contains("--bind <arg>\n          comma-separated list of ips/hostnames to bind to locally, with a\n          rather long description that wraps (defaults to '')\n\n"), "{text}");
    }
}
