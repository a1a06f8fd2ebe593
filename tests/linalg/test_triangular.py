"""Triangular and Gram products that skip known zeros equal the dense products (fp64)."""

import pytest
import torch

from optimlab.linalg.triangular import gram, tri_matmul, triu_triu


@pytest.mark.parametrize("n, k, cutoff", [(7, 3, 2), (16, 5, 3), (33, 33, 4), (5, 2, 256)])
@pytest.mark.parametrize("upper", [True, False])
def test_tri_matmul_equals_dense(n, k, cutoff, upper):
    g = torch.Generator().manual_seed(n * k)
    T = torch.randn(3, n, n, generator=g, dtype=torch.float64)
    X = torch.randn(3, n, k, generator=g, dtype=torch.float64)
    dense = (T.triu() if upper else T.tril()) @ X  # the other triangle of T is ignored
    torch.testing.assert_close(tri_matmul(T, X, upper=upper, cutoff=cutoff), dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m, k, cutoff", [(9, 4, 2), (20, 7, 5), (5, 3, 256)])
def test_gram_equals_dense(m, k, cutoff):
    A = torch.randn(2, m, k, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
    S = gram(A, cutoff=cutoff)
    torch.testing.assert_close(S, A @ A.mT, rtol=1e-12, atol=1e-12)
    assert torch.equal(S, S.mT)



@pytest.mark.parametrize("n, cutoff", [(9, 2), (32, 3), (6, 256)])
def test_triu_triu_equals_dense(n, cutoff):
    g = torch.Generator().manual_seed(n)
    U, V = torch.randn(2, 2, n, n, generator=g, dtype=torch.float64)
    R = triu_triu(U, V, cutoff=cutoff)
    torch.testing.assert_close(R, U.triu() @ V.triu(), rtol=1e-12, atol=1e-12)
    assert torch.equal(R, R.triu())  # exactly upper-triangular
