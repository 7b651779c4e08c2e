"""Data sets from Python: every loader entry point, the statistics, and bad input."""

import math

import numpy as np
import pytest

import reelvec
from reelvec.errors import DataFileNotFoundError, DataFormatError, ReelvecError

STATS_KEYS = {"layout", "users", "movies_rated", "movies_catalogue", "ratings", "rating_min", "rating_max",
              "rating_mean", "density", "ratings_per_user_min", "ratings_per_user_median",
              "ratings_per_user_max", "time_min", "time_max", "duplicates_dropped",
              "rated_not_in_catalogue", "catalogue_never_rated", "from_cache"}


def test_load_a_movielens_folder_with_titles_and_stats(latest_dir):
    ds = reelvec.load(latest_dir, cache=False)
    assert (ds.n_users, ds.n_movies, ds.n_ratings, len(ds)) == (3, 3, 5, 5)
    s = ds.stats()
    assert set(s) == STATS_KEYS
    assert s["layout"] == "ml-latest" and s["users"] == 3 and s["movies_rated"] == 3 and s["ratings"] == 5
    assert ds.titles()[30] == "Usual Suspects, The (1995)"
    a = ds.to_arrays()
    assert a["userId"].dtype == np.int64 and a["rating"].dtype == np.float32
    assert list(a["movieId"]) == [10, 20, 10, 30, 20]
    assert ds.source.endswith("ml-latest-small")


def test_a_generic_file_by_column_index(tmp_path):
    f = tmp_path / "r.tsv"
    f.write_text("u\tm\tstars\n7\t1\t3\n8\t2\t4\n")
    ds = reelvec.load(f, layout="generic", columns=[0, 1, 2], delimiter="\t", header=True, cache=False)
    assert ds.n_ratings == 2 and ds.stats()["rating_max"] == 4.0


def test_a_bad_line_names_file_and_line(tmp_path, latest_dir):
    (latest_dir / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,100\n1,xx,3.5,101\n")
    with pytest.raises(DataFormatError) as e:
        reelvec.load(latest_dir, cache=False)
    assert isinstance(e.value, ValueError) and isinstance(e.value, ReelvecError)
    assert e.value.line == 3 and e.value.filename.endswith("ratings.csv")
    assert ":3:" in str(e.value)


def test_a_nan_rating_in_a_file_is_an_error(latest_dir):
    (latest_dir / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,NaN,100\n")
    with pytest.raises(DataFormatError) as e:
        reelvec.load(latest_dir, cache=False)
    assert e.value.line == 2


def test_a_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        reelvec.load(tmp_path / "nowhere")
    assert isinstance(e.value, DataFileNotFoundError)
    assert "nowhere" in e.value.filename


def test_from_arrays_with_titles_and_timestamps():
    ds = reelvec.from_arrays([5, 5, 6], np.array([1, 2, 1], dtype=np.int32), [4, 3.5, 2],
                             timestamps=[3, 2, 1], titles={1: "Alien (1979)", 2: "Heat (1995)"})
    assert (ds.n_users, ds.n_movies) == (2, 2)
    assert ds.titles() == {1: "Alien (1979)", 2: "Heat (1995)"}
    assert ds.source is None


@pytest.mark.parametrize(
    "users,items,ratings,what",
    [
        ([1.5, 2.0], [1, 2], [3.0, 4.0], "integer ids"),       # float ids
        (["a", "b"], [1, 2], [3.0, 4.0], "integer ids"),       # strings
        ([1, 2], [1, 2], ["x", "y"], "numbers"),               # string ratings
        ([1, 2, 3], [1, 2], [3.0, 4.0], "equal length"),       # mismatched lengths
        ([1, 2], [1, 2], [3.0, float("nan")], "<triples>:2: rating is not a finite"),  # NaN, row named
        ([1, -2], [1, 2], [3.0, 4.0], "non-negative"),         # negative id
        ([[1, 2]], [1, 2], [3.0, 4.0], "1-D"),                 # wrong shape
        ([], [], [], "no ratings"),                            # empty
    ],
)
def test_from_arrays_rejects_bad_input(users, items, ratings, what):
    with pytest.raises(DataFormatError) as e:
        reelvec.from_arrays(users, items, ratings)
    assert isinstance(e.value, ValueError)
    assert what in str(e.value), str(e.value)


def test_from_pandas_and_polars_style_frames():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"u": [1, 1, 2], "m": [10, 20, 10], "r": [4.0, 3.0, 5.0], "t": [1, 2, 3]})
    ds = reelvec.from_pandas(df, user="u", item="m", rating="r", timestamp="t")
    assert ds.n_ratings == 3 and ds.stats()["rating_mean"] == pytest.approx(4.0)
    back = ds.to_pandas()
    assert list(back.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert list(back["movieId"]) == [10, 20, 10]
    with pytest.raises(DataFormatError, match="column 'rating'"):
        reelvec.from_pandas(df, user="u", item="m")
    df.loc[1, "r"] = math.nan
    with pytest.raises(DataFormatError, match="<triples>:2: rating is not a finite"):
        reelvec.from_pandas(df, user="u", item="m", rating="r")


def test_synth_is_seeded():
    a, b, c = reelvec.synth("tiny", seed=9), reelvec.synth("tiny", seed=9), reelvec.synth("tiny", seed=10)
    for key, value in a.to_arrays().items():
        assert np.array_equal(value, b.to_arrays()[key])
    assert not np.array_equal(a.to_arrays()["rating"], c.to_arrays()["rating"])
    assert a.source == "synth:tiny"
    with pytest.raises(DataFormatError, match="unknown preset"):
        reelvec.synth("huge")
