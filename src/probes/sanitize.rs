//! Making hostile text safe to print: every text of a probe report (console, findings file,
//! metrics JSON, JUnit) goes through [`shown`] once, when the report is put together.
//!
//! A probe sends hostile values and shows what came back, so its texts may hold anything:
//! a 5,000-digit id, a right-to-left override that reorders a terminal line, an escape
//! sequence, a zero-width space that hides a difference. They are shown shortened and
//! escaped, never as they are.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// How many characters of one value (a run between spaces and delimiters) are shown.
pub const VALUE_CHARS: usize = 80;

/// `text` safe to print: every value longer than [`VALUE_CHARS`] cut to its start and
/// its length (`999…999… (5000 characters)`), control, format (bidi, zero-width),
/// separator, private-use and unassigned characters escaped as `\u{202E}` (tabs and line
/// breaks become spaces), and the whole cut to at most `max` characters (at least 40),
/// ending with its length likewise.
///
/// Applying it again to its own output changes nothing (for the same `max`, or a larger).
pub fn shown(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(4 * max));
    let mut i = 0;
    while i < chars.len() {
        if is_delimiter(chars[i]) {
            escape_into(&mut out, chars[i]);
            i += 1;
            continue;
        }
        let end = chars[i..]
            .iter()
            .position(|c| is_delimiter(*c))
            .map_or(chars.len(), |n| i + n);
        let run = &chars[i..end];
        for c in run.iter().take(VALUE_CHARS) {
            escape_into(&mut out, *c);
        }
        if run.len() > VALUE_CHARS {
            out.push_str(&length_note(run.len()));
        }
        i = end;
    }
    if out.chars().count() > max {
        // The note counts in `max`, so that showing the result again leaves it as it is.
        let note = length_note(chars.len());
        let keep = max.saturating_sub(note.chars().count());
        let mut cut: String = out.chars().take(keep).collect();
        cut.push_str(&note);
        return cut;
    }
    out
}

fn length_note(characters: usize) -> String {
    format!("… ({characters} characters)")
}

/// Where one value ends: spaces, the delimiters of paths, queries and JSON, and the `…`
/// that ends a shortened value (so a shortened value stays as it is).
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || "\"',:;{}[]()<>/?&=|`…".contains(c)
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\t' | '\n' | '\r' => out.push(' '),
        c if is_invisible(c) => out.push_str(&format!("\\u{{{:X}}}", u32::from(c))),
        c => out.push(c),
    }
}

/// Characters that do not show as themselves: controls (C0, C1), format characters (the
/// bidi controls, zero-width spaces and joiners, the byte-order mark, tags), line and
/// paragraph separators, private-use and unassigned code points, and the few other
/// default-ignorable ones (variation selectors, Hangul fillers, the grapheme joiner).
fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    ) || matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_cut_to_its_start_and_its_length() {
        let id = "9".repeat(5000);
        let path = shown(&format!("/api/gdpr/export/{id}/download"), 500);
        assert_eq!(
            path,
            format!(
                "/api/gdpr/export/{}… (5000 characters)/download",
                "9".repeat(80)
            )
        );
        // In JSON too, and the rest of the text stays.
        let body = shown(
            &format!("{{\"query\":\"{}\",\"limit\":5}}", "q".repeat(100)),
            500,
        );
        assert_eq!(
            body,
            format!(
                "{{\"query\":\"{}… (100 characters)\",\"limit\":5}}",
                "q".repeat(80)
            )
        );
        assert_eq!(shown(&"x".repeat(80), 500), "x".repeat(80));
    }

    #[test]
    fn invisible_and_bidi_characters_are_escaped() {
        assert_eq!(
            shown("a\u{202E}b\u{200B}c\u{0}d\u{1B}[31me\u{7F}\u{85}", 100),
            "a\\u{202E}b\\u{200B}c\\u{0}d\\u{1B}[31me\\u{7F}\\u{85}"
        );
        assert_eq!(
            shown("x\u{2066}y\u{FEFF}z\u{E0041}", 100),
            "x\\u{2066}y\\u{FEFF}z\\u{E0041}"
        );
        assert_eq!(shown("line\nbreak\ttab\r", 100), "line break tab ");
        assert_eq!(
            shown("\u{FE0F}\u{3164}\u{E000}", 100),
            "\\u{FE0F}\\u{3164}\\u{E000}"
        );
        // Visible text, accents, emoji and other scripts stay as they are.
        let plain = "café 😀 日本語 ünïcödé — «quotes» $#@!";
        assert_eq!(shown(plain, 100), plain);
    }

    #[test]
    fn the_whole_text_is_cut_at_max_with_its_length() {
        let words = "word ".repeat(100);
        let cut = shown(&words, 30);
        assert_eq!(cut, "word word wo… (500 characters)");
        assert_eq!(cut.chars().count(), 30);
    }

    #[test]
    fn showing_twice_changes_nothing() {
        let hostile = format!(
            "{} \u{202E}evil\u{0} {} {}",
            "9".repeat(5000),
            "a/".repeat(300),
            "z".repeat(81)
        );
        for max in [40, 200, 5000] {
            let once = shown(&hostile, max);
            assert_eq!(shown(&once, max), once, "max {max}");
            assert!(!once.contains('\u{202E}') && !once.contains('\u{0}'));
        }
    }
}
