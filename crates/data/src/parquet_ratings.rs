//! Ratings from Apache Parquet (arrow-rs): `ratings.parquet` in a MovieLens folder (columns
//! `userId`, `movieId`, `rating`, optional `timestamp`, found by name) or any `.parquet` file
//! through the generic layout (columns by 0-based position, as for delimited files). Ids may be
//! any integer type, ratings any float or integer type, timestamps integers or Arrow timestamps
//! (read as seconds). The checks are the CSV parser's: a missing column is a bad header, and a
//! null, negative id or non-finite rating is an error naming the file and the row (the "line"
//! of the error is the 1-based row + 1, as if the file had a header line). The range check of a
//! MovieLens layout applies too.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::parse::RawRatings;
use crate::{DataError, ParseProblem};

/// Which columns hold what.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Columns<'a> {
    /// By name (`ratings.parquet`): user, movie, rating, optional timestamp.
    Named(&'a str, &'a str, &'a str, Option<&'a str>),
    /// By 0-based position (the generic layout).
    Indexed(usize, usize, usize, Option<usize>),
}

/// The names `ratings.parquet` must have.
pub(crate) const MOVIELENS: Columns<'static> =
    Columns::Named("userId", "movieId", "rating", Some("timestamp"));

/// True when `path` names a Parquet file (by extension).
pub(crate) fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// The column names of the Parquet file `path`, in order.
pub(crate) fn column_names(path: &Path) -> Result<Vec<String>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DataError::parse(path, 1, ParseProblem::Other(format!("not a Parquet file: {e}"))))?;
    Ok(builder.schema().fields().iter().map(|f| f.name().clone()).collect())
}

/// Reads the rating columns of `path`; `range` is the layout's allowed rating range.
pub(crate) fn read(
    path: &Path,
    cols: Columns<'_>,
    range: Option<(f32, f32)>,
) -> Result<RawRatings, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let bad = |problem: String| DataError::parse(path, 1, ParseProblem::Other(problem));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(format!("not a Parquet file: {e}")))?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let find = |name: &str| names.iter().position(|n| n == name);
    let missing = |what: String| {
        DataError::parse(path, 1, ParseProblem::BadHeader { expected: what, found: names.join(",") })
    };
    let (u, m, r, t) = match cols {
        Columns::Named(u, m, r, t) => {
            let need = |n: &str| find(n).ok_or_else(|| missing(format!("a column named {n:?}")));
            // A MovieLens file may lack timestamps (then 0, as in the generic layout).
            (need(u)?, need(m)?, need(r)?, t.and_then(find))
        }
        Columns::Indexed(u, m, r, t) => {
            for i in [Some(u), Some(m), Some(r), t].into_iter().flatten() {
                if i >= names.len() {
                    return Err(missing(format!("a column {i} (0-based)")));
                }
            }
            (u, m, r, t)
        }
    };
    let reader = builder.build().map_err(|e| bad(e.to_string()))?;
    let mut out = RawRatings::default();
    let mut row0 = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("reading Parquet: {e}")))?;
        append(path, &batch, (u, m, r, t), &names, row0, range, &mut out)?;
        row0 += batch.num_rows() as u64;
    }
    Ok(out)
}

/// The error line of 0-based data row `row`.
fn line(row: u64) -> u64 {
    row + 2
}

fn append(
    path: &Path,
    batch: &RecordBatch,
    (u, m, r, t): (usize, usize, usize, Option<usize>),
    names: &[String],
    row0: u64,
    range: Option<(f32, f32)>,
    out: &mut RawRatings,
) -> Result<(), DataError> {
    let n = batch.num_rows();
    let users = ints(path, batch.column(u).as_ref(), column_name(names, u), row0, "an integer id")?;
    let movies = ints(path, batch.column(m).as_ref(), column_name(names, m), row0, "an integer id")?;
    let ratings = floats(path, batch.column(r).as_ref(), column_name(names, r), row0)?;
    let times = match t {
        Some(t) => ints(path, batch.column(t).as_ref(), column_name(names, t), row0, "a timestamp")?,
        None => vec![0; n],
    };
    for i in 0..n {
        let at = |problem| DataError::parse(path, line(row0 + i as u64), problem);
        let id = |v: i128, column: &'static str| {
            u64::try_from(v).map_err(|_| {
                at(ParseProblem::BadNumber { column, text: v.to_string(), kind: "a non-negative integer id" })
            })
        };
        let rating = ratings[i];
        if !rating.is_finite() {
            return Err(at(ParseProblem::NotFinite { text: rating.to_string() }));
        }
        let rating = rating as f32;
        if let Some((min, max)) = range {
            if !(min..=max).contains(&rating) {
                return Err(at(ParseProblem::RatingOutOfRange { value: rating, min, max }));
            }
        }
        out.user.push(id(users[i], "user")?);
        out.movie.push(id(movies[i], "movie")?);
        out.rating.push(rating);
        out.timestamp.push(i64::try_from(times[i]).map_err(|_| {
            at(ParseProblem::BadNumber {
                column: "timestamp",
                text: times[i].to_string(),
                kind: "a timestamp",
            })
        })?);
    }
    Ok(())
}

fn column_name(names: &[String], i: usize) -> &'static str {
    // ParseProblem names columns with static strings; the MovieLens names cover the usual case.
    match names.get(i).map(String::as_str) {
        Some("userId") => "userId",
        Some("movieId") => "movieId",
        Some("rating") => "rating",
        Some("timestamp") => "timestamp",
        _ => "column",
    }
}

fn null_at(
    path: &Path,
    array: &dyn Array,
    row0: u64,
    column: &'static str,
    kind: &'static str,
) -> Option<DataError> {
    (array.null_count() > 0).then(|| {
        let i = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        DataError::parse(
            path,
            line(row0 + i as u64),
            ParseProblem::BadNumber { column, text: "null".into(), kind },
        )
    })
}

/// An integer column (any width; Arrow timestamps as seconds) as i128.
fn ints(
    path: &Path,
    a: &dyn Array,
    column: &'static str,
    row0: u64,
    kind: &'static str,
) -> Result<Vec<i128>, DataError> {
    if let Some(e) = null_at(path, a, row0, column, kind) {
        return Err(e);
    }
    macro_rules! prim {
        ($t:ty) => {
            a.as_primitive::<$t>().values().iter().map(|&v| v as i128).collect()
        };
    }
    Ok(match a.data_type() {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Timestamp(TimeUnit::Second, _) => prim!(arrow_array::types::TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => a
            .as_primitive::<arrow_array::types::TimestampMillisecondType>()
            .values()
            .iter()
            .map(|&v| (v as i128).div_euclid(1_000))
            .collect(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => a
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
            .values()
            .iter()
            .map(|&v| (v as i128).div_euclid(1_000_000))
            .collect(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => a
            .as_primitive::<arrow_array::types::TimestampNanosecondType>()
            .values()
            .iter()
            .map(|&v| (v as i128).div_euclid(1_000_000_000))
            .collect(),
        other => {
            let problem = ParseProblem::BadNumber { column, text: format!("a column of type {other}"), kind };
            return Err(DataError::parse(path, 1, problem));
        }
    })
}

/// A rating column (floats or integers) as f64.
fn floats(path: &Path, a: &dyn Array, column: &'static str, row0: u64) -> Result<Vec<f64>, DataError> {
    if let Some(e) = null_at(path, a, row0, column, "a rating") {
        return Err(e);
    }
    Ok(match a.data_type() {
        DataType::Float32 => a.as_primitive::<Float32Type>().values().iter().map(|&v| f64::from(v)).collect(),
        DataType::Float64 => a.as_primitive::<Float64Type>().values().to_vec(),
        _ => ints(path, a, column, row0, "a rating")?.into_iter().map(|v| v as f64).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::{load, LoadOptions};

    fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let fields: Vec<Field> =
            columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0)).collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn no_cache() -> LoadOptions {
        LoadOptions { use_cache: false, ..LoadOptions::default() }
    }

    #[test]
    fn ratings_parquet_loads_like_the_same_ratings_csv() {
        let dir = tempfile::tempdir().unwrap();
        let (pq, csv) = (dir.path().join("pq"), dir.path().join("csv"));
        std::fs::create_dir_all(&pq).unwrap();
        std::fs::create_dir_all(&csv).unwrap();
        write(
            &pq.join("ratings.parquet"),
            vec![
                ("userId", Arc::new(Int32Array::from(vec![1, 1, 2, 3])) as ArrayRef),
                ("movieId", Arc::new(Int64Array::from(vec![10, 20, 10, 30]))),
                ("rating", Arc::new(Float64Array::from(vec![4.0, 3.5, 5.0, 0.5]))),
                ("timestamp", Arc::new(Int64Array::from(vec![100, 101, 102, 103]))),
            ],
        );
        let text =
            "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.5,101\n2,10,5.0,102\n3,30,0.5,103\n";
        std::fs::write(csv.join("ratings.csv"), text).unwrap();
        let movies = "movieId,title,genres\n10,Heat (1995),Action\n";
        std::fs::write(pq.join("movies.csv"), movies).unwrap();
        std::fs::write(csv.join("movies.csv"), movies).unwrap();
        let a = load(&pq, &no_cache()).unwrap();
        let b = load(&csv, &no_cache()).unwrap();
        assert_eq!(a.ratings, b.ratings);
        assert_eq!(a.users.raws(), b.users.raws());
        assert_eq!(a.movies.raws(), b.movies.raws());
        assert_eq!(a.title(0), "Heat (1995)");
        assert_eq!(a.report.layout, "ml-latest");
    }

    #[test]
    fn generic_files_by_column_name_round_trip_parquet_and_csv_alike() {
        let dir = tempfile::tempdir().unwrap();
        // Columns in another order, under other names, with a column the loader skips.
        let pq = dir.path().join("any.parquet");
        write(
            &pq,
            vec![
                ("stars", Arc::new(Float64Array::from(vec![4.0, 3.5, 5.0])) as ArrayRef),
                ("note", Arc::new(Int32Array::from(vec![0, 0, 0]))),
                ("who", Arc::new(Int32Array::from(vec![7, 7, 8]))),
                ("what", Arc::new(Int64Array::from(vec![10, 20, 10]))),
                ("when", Arc::new(Int64Array::from(vec![100, 101, 102]))),
            ],
        );
        let csv = dir.path().join("any.csv");
        std::fs::write(&csv, "stars;note;who;what;when\n4.0;0;7;10;100\n3.5;0;7;20;101\n5;0;8;10;102\n")
            .unwrap();
        let names = ["who", "what", "stars", "when"];
        let read = |path: &Path, delimiter: u8| {
            let generic = crate::GenericColumns::from_spec(path, &names, delimiter, false).unwrap();
            let opts =
                LoadOptions { layout: Some(crate::Layout::Generic), generic: Some(generic), ..no_cache() };
            load(path, &opts).unwrap()
        };
        let (a, b) = (read(&pq, b','), read(&csv, b';'));
        assert_eq!(a.ratings.rating, vec![4.0, 3.5, 5.0]);
        assert_eq!(a.ratings.timestamp, vec![100, 101, 102]);
        assert_eq!(a.users.raws(), &[7, 8]);
        assert_eq!(a.movies.raws(), &[10, 20]);
        assert_eq!(
            (&a.ratings.user, &a.ratings.movie, &a.ratings.rating),
            (&b.ratings.user, &b.ratings.movie, &b.ratings.rating)
        );
        assert_eq!(a.ratings.timestamp, b.ratings.timestamp);
        // The same columns by position read the same file alike.
        let by_position = crate::GenericColumns::from_spec(&pq, &["2", "3", "0", "4"], b',', false).unwrap();
        assert!(!by_position.has_header);
        let opts = LoadOptions { generic: Some(by_position), ..no_cache() };
        assert_eq!(load(&pq, &opts).unwrap().ratings.rating, a.ratings.rating);

        // A name the header lacks is a bad header at line 1, naming it; a wrong count is refused.
        for path in [&pq, &csv] {
            let delimiter = if path == &csv { b';' } else { b',' };
            let err = crate::GenericColumns::from_spec(path, &["who", "movie", "stars"], delimiter, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(":1:") && err.contains("named \\\"movie") && err.contains("who"), "{err}");
            let err = crate::GenericColumns::from_spec(path, &["who", "what"], delimiter, false).unwrap_err();
            assert!(err.to_string().contains("expected 3 or 4"), "{err}");
        }
        // The CSV checks apply to a file read by name: a NaN rating names its line.
        std::fs::write(&csv, "stars;note;who;what;when\n4.0;0;7;10;100\nnan;0;7;20;101\n").unwrap();
        let generic = crate::GenericColumns::from_spec(&csv, &names, b';', false).unwrap();
        let opts = LoadOptions { layout: Some(crate::Layout::Generic), generic: Some(generic), ..no_cache() };
        let err = load(&csv, &opts).unwrap_err().to_string();
        assert!(err.contains("any.csv:3"), "{err}");
    }

    #[test]
    fn a_generic_parquet_file_by_position_and_the_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("any.parquet");
        write(
            &f,
            vec![
                ("who", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef),
                ("what", Arc::new(Int64Array::from(vec![1, 2]))),
                ("stars", Arc::new(Float32Array::from(vec![9.0, 10.0]))),
            ],
        );
        let opts = LoadOptions {
            generic: Some(crate::GenericColumns { timestamp: None, ..Default::default() }),
            ..no_cache()
        };
        let ds = load(&f, &opts).unwrap();
        assert_eq!(ds.ratings.rating, vec![9.0, 10.0]);
        // Column 3 (the default timestamp) does not exist.
        let err = load(&f, &no_cache()).unwrap_err().to_string();
        assert!(err.contains("any.parquet:1") && err.contains("column 3"), "{err}");

        // Missing named column, NaN and null ratings, a negative id: file and row named.
        let d = dir.path().join("ml");
        std::fs::create_dir_all(&d).unwrap();
        let r = d.join("ratings.parquet");
        write(&r, vec![("userId", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
        let err = load(&d, &no_cache()).unwrap_err().to_string();
        assert!(err.contains("ratings.parquet:1") && err.contains("movieId"), "{err}");
        let cols = |rating: ArrayRef, user: Vec<i64>| {
            vec![
                ("userId", Arc::new(Int64Array::from(user)) as ArrayRef),
                ("movieId", Arc::new(Int64Array::from(vec![1, 2, 3]))),
                ("rating", rating),
            ]
        };
        write(&r, cols(Arc::new(Float32Array::from(vec![1.0, 2.0, f32::NAN])), vec![1, 2, 3]));
        let err = load(&d, &no_cache()).unwrap_err().to_string();
        assert!(err.contains("ratings.parquet:4") && err.contains("not a finite"), "{err}");
        write(&r, cols(Arc::new(Float32Array::from(vec![Some(1.0), None, Some(2.0)])), vec![1, 2, 3]));
        let err = load(&d, &no_cache()).unwrap_err().to_string();
        assert!(err.contains("ratings.parquet:3") && err.contains("null"), "{err}");
        write(&r, cols(Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0])), vec![1, -2, 3]));
        let err = load(&d, &no_cache()).unwrap_err().to_string();
        assert!(err.contains("ratings.parquet:3") && err.contains("-2"), "{err}");
        write(&r, cols(Arc::new(Float32Array::from(vec![1.0, 9.0, 3.0])), vec![1, 2, 3]));
        let err = load(&d, &no_cache()).unwrap_err().to_string();
        assert!(err.contains("ratings.parquet:3") && err.contains("outside"), "{err}");
        std::fs::write(&r, b"not parquet").unwrap();
        assert!(load(&d, &no_cache()).unwrap_err().to_string().contains("not a Parquet file"));
    }
}
