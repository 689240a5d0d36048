//! Result tables, written as CSV.

use std::fmt::Write as _;

/// A table: a header and rows of already formatted cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (its cells in column order).
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// The table as CSV: the header line, then one line per row. Cells are numbers and
    /// names without commas, so nothing is quoted.
    pub fn to_csv(&self) -> String {
        let mut out = self.header.join(",");
        out.push('\n');
        for row in &self.rows {
            let _ = writeln!(out, "{}", row.join(","));
        }
        out
    }
}

/// A number with three decimals, the precision of every CSV cell.
pub fn cell(value: f64) -> String {
    format!("{value:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_header_and_rows() {
        let mut table = Table::new(&["a", "b"]);
        table.push(vec!["x".into(), cell(1.0)]);
        table.push(vec!["y".into(), cell(2.5)]);
        assert_eq!(table.to_csv(), "a,b\nx,1.000\ny,2.500\n");
        assert_eq!(table.rows().len(), 2);
    }
}
