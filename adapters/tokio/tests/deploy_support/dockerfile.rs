//! The Dockerfile in `deploy/`, read into stages of instructions.

use super::{deploy_dir, read};

/// The Dockerfile's instructions as stages of (instruction, arguments),
/// continuation lines joined and comments dropped.
pub fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read(&deploy_dir().join("Dockerfile"));
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                instructions.push(std::mem::take(&mut pending));
            }
        }
    }
    assert!(pending.is_empty(), "the Dockerfile ends in a continuation");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in instructions {
        let (keyword, arguments) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((&instruction, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("an instruction before the first FROM")
            .push((keyword, arguments.trim().to_owned()));
    }
    stages
}

pub fn instruction<'a>(stage: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(name, _)| name == keyword)
        .map(|(_, arguments)| arguments.as_str())
        .collect()
}

/// A `FROM image [AS name]` stage's image and name.
pub fn from(stage: &[(String, String)]) -> (String, Option<String>) {
    let words: Vec<&str> = stage[0].1.split_whitespace().collect();
    match words.as_slice() {
        [image] => ((*image).to_owned(), None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
            ((*image).to_owned(), Some((*name).to_owned()))
        }
        _ => panic!("FROM {}", stage[0].1),
    }
}
