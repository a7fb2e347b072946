//! Every kernel family against its CPU f64 reference on the present adapter.

use bitdance_tests::assert_family;

#[test]
fn elementwise() {
    assert_family("elementwise");
}

#[test]
fn matmul() {
    assert_family("matmul");
}

#[test]
fn norm() {
    assert_family("norm");
}

#[test]
fn rope() {
    assert_family("rope");
}

#[test]
fn attention() {
    assert_family("attention");
}

#[test]
fn data() {
    assert_family("data");
}

#[test]
fn loss() {
    assert_family("loss");
}

#[test]
fn optim() {
    assert_family("optim");
}

#[test]
fn flow() {
    assert_family("flow");
}

#[test]
fn conv() {
    assert_family("conv");
}
