//! `sparctl analyze`: finds the input files, runs spar-istio's analysis, prints messages.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use spar_istio::{Message, Options, analyze, has_errors, load};

use crate::Output;

/// Exit code when a path cannot be read (clap also uses 2 for usage errors).
const EXIT_UNREADABLE: u8 = 2;

pub(crate) fn run(paths: &[PathBuf], output: Output, namespace: &str) -> ExitCode {
    let mut inputs: Vec<(String, String)> = Vec::new();
    let mut unreadable = false;
    for path in paths {
        if let Err(e) = collect(path, &mut inputs) {
            report_unreadable(path, &e);
            unreadable = true;
        }
    }
    if unreadable {
        return ExitCode::from(EXIT_UNREADABLE);
    }
    let options = Options {
        default_namespace: namespace.to_owned(),
    };
    let messages = analyze_all(&inputs, &options);
    let text = render(&messages, output, namespace);
    if print(&text).is_err() {
        return ExitCode::from(EXIT_UNREADABLE);
    }
    if has_errors(&messages) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// spar-istio's analysis of every input together, then, when Istio would accept it all,
/// what spar-proxy cannot do yet (warnings). Sorted by file, line and path.
fn analyze_all(inputs: &[(String, String)], options: &Options) -> Vec<Message> {
    let mut resources = Vec::new();
    let mut messages = Vec::new();
    for (file, text) in inputs {
        let loaded = load(file, text, options);
        resources.extend(loaded.resources);
        messages.extend(loaded.messages);
    }
    messages.extend(analyze(&resources));
    if !has_errors(&messages) {
        messages.extend(crate::unsupported::messages(&resources));
    }
    messages.sort_by(|a, b| {
        (&a.file, a.line, &a.path, a.level).cmp(&(&b.file, b.line, &b.path, b.level))
    });
    messages
}

/// Reads a file, stdin (`-`), or every YAML/JSON file under a directory, sorted by path.
fn collect(path: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        out.push(("-".to_owned(), text));
        return Ok(());
    }
    if !path.is_dir() {
        out.push((path.display().to_string(), std::fs::read_to_string(path)?));
        return Ok(());
    }
    let mut todo = vec![path.to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            if p.is_dir() {
                todo.push(p);
            } else if p
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        out.push((f.display().to_string(), text));
    }
    Ok(())
}

/// The output text: one message per line (istioctl's shape), or a JSON array.
pub(crate) fn render(messages: &[Message], output: Output, namespace: &str) -> String {
    match output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(messages).unwrap_or_else(|_| "[]".into());
            s.push('\n');
            s
        }
        Output::Log if messages.is_empty() => {
            format!("✔ No validation issues found when analyzing namespace: {namespace}.\n")
        }
        Output::Log => messages.iter().map(|m| format!("{m}\n")).collect(),
    }
}

#[allow(clippy::print_stdout)] // the command's output
fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[allow(clippy::print_stderr)] // the command's diagnostics
fn report_unreadable(path: &Path, e: &std::io::Error) {
    eprintln!("Error: cannot read {}: {e}", path.display());
}
