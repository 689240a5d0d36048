//! Worker labels (`zone=a`), which placement constraints match: parsing and checking.

use std::collections::BTreeMap;

use super::constraint::valid_part;

/// Most labels one worker may carry.
pub const MAX_LABELS: usize = 64;

/// `"key=value"` as a label.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.ends_with('!') && valid_part(key) && valid_part(value) => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "label {text:?} must be key=value, each 1 to 253 of a-z A-Z 0-9 - _ . /"
        )),
    }
}

/// Checks a worker's labels: at most [`MAX_LABELS`], keys and values as [`parse_label`]
/// accepts them.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("a worker may have at most {MAX_LABELS} labels"));
    }
    match labels
        .iter()
        .find(|(key, value)| !valid_part(key) || !valid_part(value))
    {
        Some((key, value)) => Err(format!(
            "label {key:?}={value:?}: key and value must be 1 to 253 of a-z A-Z 0-9 - _ . /"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_validate() {
        assert_eq!(parse_label("zone=a"), Ok(("zone".into(), "a".into())));
        for bad in ["zone", "zone=", "=a", "zone!=a", "zo ne=a"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        let mut labels = BTreeMap::from([("zone".to_owned(), "a".to_owned())]);
        assert!(validate_labels(&labels).is_ok());
        labels.insert("bad key".into(), "x".into());
        assert!(validate_labels(&labels).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert!(validate_labels(&many).is_err());
    }
}
