//! Input rules shared by registration and profile updates.

/// Top-level names reserved for documentation, testing or local use (RFC 2606,
/// RFC 6761, RFC 7686): addresses there can never receive mail.
const SPECIAL_USE: &[&str] = &[
    "local",
    "localhost",
    "test",
    "invalid",
    "example",
    "onion",
    "arpa",
];

const LOCAL_PUNCT: &str = "!#$%&'*+/=?^_`{|}~.-";

/// Checks a mail address and returns it normalized (trimmed, lower-case).
pub(crate) fn email(raw: &str) -> Result<String, String> {
    let addr = raw.trim();
    if addr.is_empty() {
        return Err("value is not a valid email address: it is empty".into());
    }
    if addr.len() > 254 {
        return Err("value is not a valid email address: it is too long".into());
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err(
            "value is not a valid email address: an email address must have an @-sign".into(),
        );
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || LOCAL_PUNCT.contains(c));
    if !local_ok {
        return Err(
            "value is not a valid email address: the part before the @-sign is not valid".into(),
        );
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    let tld = labels.last().copied().unwrap_or("");
    let tld_ok =
        tld.len() >= 2 && (tld.chars().all(|c| c.is_ascii_alphabetic()) || tld.starts_with("xn--"));
    if !labels_ok || !tld_ok {
        if domain == "localhost" {
            return Err(special_use());
        }
        return Err(
            "value is not a valid email address: the part after the @-sign is not valid".into(),
        );
    }
    if SPECIAL_USE.contains(&tld) {
        return Err(special_use());
    }
    Ok(format!("{}@{}", local.to_ascii_lowercase(), domain))
}

fn special_use() -> String {
    "value is not a valid email address: the part after the @-sign is a special-use or \
     reserved name that cannot be used with email"
        .into()
}

/// The password policy: 8 to 128 characters with an upper-case letter, a
/// lower-case letter and a digit.
pub(crate) fn password(raw: &str) -> Result<(), String> {
    let n = raw.chars().count();
    if n < 8 {
        return Err("String should have at least 8 characters".into());
    }
    if n > 128 {
        return Err("String should have at most 128 characters".into());
    }
    if !raw.chars().any(char::is_uppercase) {
        return Err("Password must contain at least one uppercase letter".into());
    }
    if !raw.chars().any(char::is_lowercase) {
        return Err("Password must contain at least one lowercase letter".into());
    }
    if !raw.chars().any(|c| c.is_ascii_digit()) {
        return Err("Password must contain at least one digit".into());
    }
    Ok(())
}

/// A display name: trimmed, at most 100 characters; empty becomes `None`.
pub(crate) fn full_name(raw: &str) -> Result<Option<String>, String> {
    let name = raw.trim();
    if name.chars().count() > 100 {
        return Err("String should have at most 100 characters".into());
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.COM ").as_deref(), Ok("ann@example.com"));
        assert!(email("a.b+c@mail.co.uk").is_ok());
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a..b@x.com",
            "a@-x.com",
            "a@x.c",
            "u@test.local",
            "u@x.test",
            "u@foo.invalid",
            "u@localhost",
            "u@a.example",
            "a b@x.com",
        ] {
            assert!(email(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn passwords() {
        assert!(password("Passw0rdX").is_ok());
        assert!(password("Sh0rt").is_err());
        assert!(password("alllower1").is_err());
        assert!(password("ALLUPPER1").is_err());
        assert!(password("NoDigitsHere").is_err());
        assert!(password(&format!("Aa1{}", "x".repeat(126))).is_err());
    }
}
