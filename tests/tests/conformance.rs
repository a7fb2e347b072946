//! Every kernel family against its CPU f64 reference on the present adapter.

use bitdance_tests::assert_family;

#[test]
fn elementwise() {
    assert_family("elementwise");
}
