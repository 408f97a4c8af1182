import numpy as np
import pytest

from screen.processing.ctf import (
    CtfParams,
    ctf_1d,
    ctf_2d,
    ctf_zero_frequencies_A,
    defocus_from_zero_A,
    electron_wavelength_A,
    frequency_grid,
    interaction_constant_rad_per_V_A,
)


@pytest.mark.parametrize(("voltage_kV", "expected_A"), [(300.0, 0.01969), (200.0, 0.02508)])
def test_relativistic_wavelength(voltage_kV, expected_A):
    assert electron_wavelength_A(voltage_kV) == pytest.approx(expected_A, abs=1e-4)


def test_interaction_constant_at_300kV():
    assert interaction_constant_rad_per_V_A(300.0) == pytest.approx(6.53e-4, rel=5e-3)
    # sigma falls with voltage: a faster electron spends less time in the potential.
    assert interaction_constant_rad_per_V_A(200.0) > interaction_constant_rad_per_V_A(300.0)


@pytest.mark.parametrize("defocus_A", [5000.0, 15000.0, 30000.0])
@pytest.mark.parametrize("voltage_kV", [200.0, 300.0])
def test_zero_frequencies_and_defocus_from_zero_invert_each_other(defocus_A, voltage_kV):
    params = CtfParams(
        defocus_A, defocus_A, voltage_kV=voltage_kV, cs_mm=2.7, amplitude_contrast=0.07
    )
    zeros = ctf_zero_frequencies_A(params, k_max_A=0.3)

    assert len(zeros) >= 5
    assert np.all(np.diff(zeros) > 0)
    implied = [defocus_from_zero_A(k, n, params) for n, k in enumerate(zeros, start=1)]
    np.testing.assert_allclose(implied, defocus_A, rtol=1e-4)
    # They are zeros of the CTF itself.
    np.testing.assert_allclose(ctf_1d(zeros, params), 0.0, atol=2e-3)


def test_zero_frequencies_along_the_principal_axes_follow_u_and_v():
    params = CtfParams(22000.0, 16000.0, astigmatism_angle_deg=30.0)
    along_u = ctf_zero_frequencies_A(params, 0.25, angle_deg=30.0)
    along_v = ctf_zero_frequencies_A(params, 0.25, angle_deg=120.0)

    np.testing.assert_allclose(
        [defocus_from_zero_A(k, n, params) for n, k in enumerate(along_u, 1)], 22000.0, rtol=1e-4
    )
    np.testing.assert_allclose(
        [defocus_from_zero_A(k, n, params) for n, k in enumerate(along_v, 1)], 16000.0, rtol=1e-4
    )


def _zero_along_ray(ctf, k, angle, direction_deg, zero_index):
    """Frequency of the n-th sign change of the 2D CTF along one direction (interpolated)."""
    diff = np.abs((np.degrees(angle) - direction_deg + 90.0) % 180.0 - 90.0)
    on_ray = diff < 1.0
    order = np.argsort(k[on_ray])
    ks, values = k[on_ray][order], ctf[on_ray][order]
    changes = np.nonzero(np.diff(np.sign(values)) != 0)[0]
    i = changes[zero_index - 1]
    return ks[i] - values[i] * (ks[i + 1] - ks[i]) / (values[i + 1] - values[i])


def test_astigmatic_ctf_2d_has_its_zeros_on_an_ellipse():
    params = CtfParams(24000.0, 16000.0, astigmatism_angle_deg=30.0)
    shape, pixel_size_A = (1024, 1024), 1.0
    ctf = ctf_2d(shape, pixel_size_A, params)
    kx, ky = frequency_grid(shape, pixel_size_A)
    k, angle = np.hypot(kx, ky), np.arctan2(ky, kx)

    zero_index = 3
    implied = {}
    for direction in range(-90, 90, 15):
        k0 = _zero_along_ray(ctf, k, angle, direction, zero_index)
        implied[direction] = defocus_from_zero_A(k0, zero_index, params)
        expected = 0.5 * (24000 + 16000 + 8000 * np.cos(2 * np.radians(direction - 30.0)))
        assert implied[direction] == pytest.approx(expected, rel=0.01), direction

    k_u = _zero_along_ray(ctf, k, angle, 30.0, 1)
    k_v = _zero_along_ray(ctf, k, angle, -60.0, 1)  # the V axis (120°) is the same line as -60°
    assert k_u < k_v
    # First zero: chi = pi, so k^2 scales as 1/defocus (Cs is negligible this close to the origin).
    assert (k_v / k_u) ** 2 == pytest.approx(24000 / 16000, rel=0.02)
    assert max(implied, key=implied.get) == 30
    assert min(implied, key=implied.get) == -60


def test_ctf_2d_sign_and_amplitude_contrast_at_the_origin():
    params = CtfParams(15000.0, 15000.0, amplitude_contrast=0.1)
    ctf = ctf_2d((64, 64), 1.0, params)
    # -sin(arcsin(0.1)) at k = 0: protein appears dark at low frequency.
    assert ctf[0, 0] == pytest.approx(-0.1, abs=1e-6)
    assert np.all(np.abs(ctf) <= 1.0 + 1e-6)
