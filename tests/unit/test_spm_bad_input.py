"""Bad input to the SPM models and tables raises a ValueError naming the parameter, the expected form and
what was given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thalia.mass import CMC, CMMNMDA, spm

REF = Path(__file__).resolve().parents[1] / "reference" / "data" / "spm"  # SPM's outputs, see its PROVENANCE.md

FREQS = range(4, 49)


@pytest.fixture(scope="module")
def p_cmc():
    return CMC().default_parameters()


@pytest.fixture(scope="module")
def p_cmm():
    return CMMNMDA().default_parameters()


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


# -- parameter tables ----------------------------------------------------------------------------


def test_missing_table(tmp_path):
    missing = tmp_path / "absent.csv"
    with pytest.raises(ValueError, match=r"Invalid value for 'csv_path': cannot read '.*absent\.csv'"):
        spm.read_spm_parameters(missing)
    with pytest.raises(ValueError, match=r"Invalid value for 'csv_path': cannot read '"):
        spm.read_spm_parameters(tmp_path)


@pytest.mark.parametrize("text", ['label,pE\n"T(1,1)",0\n', ""], ids=["no_name_column", "empty"])
def test_table_without_name_column(tmp_path, text):
    with pytest.raises(
        ValueError,
        match=r"Invalid value for 'csv_path': .* is not an SPM parameter table "
        r"\(expected a header with a 'name' column",
    ):
        spm.read_spm_parameters(_table(tmp_path, text))


def test_unknown_column_lists_the_available_ones():
    with pytest.raises(
        ValueError, match=r"Invalid value for 'column': 'nope' is not a column of .*; available: 'pE', 'pC_diag'\."
    ):
        spm.read_spm_parameters(REF / "cmc_priors.csv", column="nope")
    with pytest.raises(ValueError, match=r"'column': 'Ep' is not a column .*available: 'pE', 'pC_diag'"):
        spm.read_spm_parameters(REF / "cmc_priors.csv", column="Ep")  # a prior table has no posterior


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('name,pE,pC_diag\n"T(1,1)",0,1\n"T(1,2)",abc,1\n', r"Column 'pE' of .*, row 3: expected a number, got 'abc'"),
        ('name,pE,pC_diag\n"T(1,1)",nan,1\n', r"Column 'pE' of .* holds a non-finite value"),
        ('name,pE,pC_diag\n"T(1,1)",0,1,3\n', r"Invalid value for 'csv_path': .* has rows of unequal length"),
    ],
    ids=["not_a_number", "nan", "ragged"],
)
def test_bad_values(tmp_path, text, pattern):
    with pytest.raises(ValueError, match=pattern):
        spm.read_spm_parameters(_table(tmp_path, text))


@pytest.mark.parametrize(
    "text, pattern",
    [
        (
            'name,pE,pC_diag\n"T[1,2]",0,1\n',
            r"Invalid parameter name 'T\[1,2\]' on row 2: expected an spm_vec name such as 'T\(1,2\)'",
        ),
        ('name,pE,pC_diag\n"T(0,1)",0,1\n', r"Invalid parameter name 'T\(0,1\)' on row 2: MATLAB indices start at 1"),
        (
            'name,pE,pC_diag\n"H(2,1)",0,1\n"H(1,1)",0,1\n',
            r"Parameter field 'H': the table must list every entry of its \(2, 1\) array in spm_vec \(column-major\) "
            r"order, i\.e\. H\(1,1\), H\(2,1\); got H\(2,1\), H\(1,1\)",
        ),
        (
            'name,pE,pC_diag\n"H(1,1)",0,1\n"H(2,1)",0,1\n"H(2,2)",0,1\n',
            r"Parameter field 'H': .* its \(2, 2\) array .* H\(1,1\), H\(2,1\), H\(1,2\), H\(2,2\); "
            r"got H\(1,1\), H\(2,1\), H\(2,2\)",
        ),
        (
            'name,pE,pC_diag\n"T(1,1)",0,1\n"S(1,1)",0,1\n"T(2,1)",0,1\n',
            r"Parameter field 'T' appears in two separate blocks \(row 4\)",
        ),
        ('name,pE,pC_diag\n"T(1,1)",0,1\n"T(1,1,2)",0,1\n', r"Parameter field 'T' mixes index ranks \[2, 3\]"),
    ],
    ids=["brackets", "zero_index", "out_of_order", "incomplete", "split_field", "mixed_ranks"],
)
def test_malformed_names_and_fields(tmp_path, text, pattern):
    with pytest.raises(ValueError, match=pattern):
        spm.read_spm_parameters(_table(tmp_path, text))


def test_negative_prior_variance(tmp_path):
    with pytest.raises(ValueError, match=r"Prior variances in .*table\.csv' must be >= 0"):
        spm.read_spm_parameters(_table(tmp_path, 'name,pE,pC_diag\n"T(1,1)",0,1\n"T(1,2)",0,-0.5\n'))


# -- spm.csd and spm.spectral_response -----------------------------------------------------------


def test_unknown_model_name(p_cmc):
    with pytest.raises(ValueError, match=r"Invalid value for 'model': allowed 'cmc', 'cmm_nmda', got 'tmc'"):
        spm.csd("tmc", p_cmc, FREQS)
    with pytest.raises(ValueError, match=r"Invalid value for 'model': expected 'cmc', 'cmm_nmda' or a neural mass"):
        spm.csd(42, p_cmc, FREQS)


def test_parameters_of_the_other_model(p_cmc, p_cmm):
    with pytest.raises(
        ValueError,
        match=r"Invalid value for 'P': the parameters do not have SPM's cmm_nmda layout; expected the fields "
        r"S, T, G, CV.*; got M, A, C, T",
    ):
        spm.csd("cmm_nmda", p_cmc, FREQS)
    with pytest.raises(ValueError, match=r"Invalid value for 'p': the parameter set has 64 numbers in another layout"):
        spm.csd(CMC(), p_cmm, FREQS)


def test_cmm_nmda_parameters_for_cmc(p_cmm):
    with pytest.raises(ValueError, match=r"Invalid value for 'P': the parameters do not have SPM's cmc layout"):
        spm.csd("cmc", p_cmm, FREQS)


def test_parameters_that_are_not_a_parameter_set(p_cmc):
    with pytest.raises(
        ValueError, match=r"Invalid value for 'P': expected a ParameterSet of SPM's cmc parameters .*got dict"
    ):
        spm.model_for("cmc", {"a": 1})
    # spm.csd also accepts a partial mapping (merged into the prior means): its names are checked
    with pytest.raises(ValueError, match=r"Unknown parameter 'zz': expected one of 'M', 'A', 'C'"):
        spm.csd("cmc", {"zz": 1}, FREQS)
    with pytest.raises(ValueError, match=r"Invalid value for \"P\['a'\]\": expected finite numbers"):
        spm.csd("cmc", {"a": np.nan}, FREQS)


@pytest.mark.parametrize("bad", [np.zeros(39), "P", [1, 2]], ids=["array", "string", "list"])
def test_parameters_that_are_not_a_mapping(bad):
    with pytest.raises(ValueError, match=r"'P'"):
        spm.csd("cmc", bad, FREQS)


@pytest.mark.parametrize(
    "freqs, pattern",
    [
        ([0.0, 1.0], r"Invalid value for 'freqs': expected frequencies > 0 Hz, got minimum 0 Hz"),
        ([-2.0, 10.0], r"Invalid value for 'freqs': expected frequencies > 0 Hz, got minimum -2 Hz"),
        ([1.0, np.nan], r"Invalid value for 'freqs': expected finite numbers, got 1 non-finite"),
        ([], r"Invalid shape for 'freqs': expected a non-empty 1-D array of frequencies in Hz, got shape \(0,\)"),
    ],
    ids=["zero", "negative", "nan", "empty"],
)
def test_bad_frequencies(p_cmc, freqs, pattern):
    with pytest.raises(ValueError, match=pattern):
        spm.csd("cmc", p_cmc, freqs)
    with pytest.raises(ValueError, match=pattern):
        spm.spectral_response("cmc", p_cmc, freqs)


def test_spectral_response_options(p_cmc):
    with pytest.raises(
        ValueError, match=r"Invalid value for 'jacobian': allowed 'exact', 'finite_difference', got 'central'"
    ):
        spm.spectral_response("cmc", p_cmc, FREQS, jacobian="central")
    with pytest.raises(
        ValueError,
        match=r"Invalid value for 'delay': allowed 'spm', 'exact', 'spm_series', 'first_order', 'none', "
        r"got 'second_order'",
    ):
        spm.spectral_response("cmc", p_cmc, FREQS, delay="second_order")
    with pytest.raises(ValueError, match=r"Invalid value for 'jacobian': allowed .* got 'central'"):
        spm.csd("cmc", p_cmc, FREQS, jacobian="central")


# -- models --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: CMC(n_sources=0), r"Invalid value for 'n_sources': expected an integer >= 1, got 0"),
        (lambda: CMMNMDA(n_sources=2.0), r"Invalid value for 'n_sources': expected an integer >= 1, got 2\.0"),
        (
            lambda: CMC(2, forward=[[0, 1]]),
            r"Invalid shape for 'forward': expected an \(2, 2\) array of 0/1 \(or bool\) \[target, source\], "
            r"got shape \(1, 2\)",
        ),
        (lambda: CMC(2, forward=[[0, 2], [0, 0]]), r"'forward': expected only 0/1 .* got 2"),
        (lambda: CMC(2, modulatory=[[0.5, 0], [0, 0]]), r"'modulatory': expected only 0/1 .* got 0\.5"),
        (lambda: CMMNMDA(2, backward=np.ones((3, 3))), r"Invalid shape for 'backward': .* got shape \(3, 3\)"),
        (
            lambda: CMMNMDA(expansion="steady"),
            r"Invalid value for 'expansion': allowed 'spm', 'fixed_point', got 'steady'",
        ),
    ],
    ids=[
        "no_sources",
        "float_sources",
        "mask_shape",
        "mask_values",
        "modulatory_values",
        "backward_shape",
        "expansion",
    ],
)
def test_model_options(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_model_given_the_other_models_parameters(p_cmc, p_cmm):
    with pytest.raises(
        ValueError,
        match=r"Invalid value for 'p': the parameter set has 64 numbers in another layout than this cmc model's \(39\)",
    ):
        CMC().csd(p_cmm, FREQS)
    with pytest.raises(ValueError, match=r"'p': the parameter set has 39 numbers .* this cmm_nmda model's \(64\)"):
        CMMNMDA().csd(p_cmc, FREQS)
    with pytest.raises(ValueError, match=r"'p': the parameter set has 39 numbers .* this cmc model's \(75\)"):
        CMC(2).csd(p_cmc, FREQS)
