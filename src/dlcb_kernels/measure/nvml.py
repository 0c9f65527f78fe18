"""GPU conditions around a measurement, from NVML (nvidia-ml-py, optional): clocks, temperature,
power and the reasons the driver gives for holding the clock down, read right after each block
of samples. The same role, and the same "throttled" key, as CpuClockMonitor for CPUs.
"""

from __future__ import annotations

import importlib

from .. import cuda

# NVML's clocks-event (formerly "throttle") reason bits, as nvml.h numbers them.
THROTTLE_REASONS = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
# The reasons that mean the measured kernel ran slower than the device can: power or heat.
# Idle, clock settings (applications clocks, display clock, board and reliability limits) and
# sync boost are not: they hold every run alike.
THROTTLING = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                        "hw_power_brake_slowdown"})

# NVML enum values (nvml.h): nvmlClockType_t, nvmlTemperatureSensors_t.
_CLOCK_SM = 1
_CLOCK_MEM = 2
_TEMPERATURE_GPU = 0


def decode_throttle_reasons(mask: int) -> list[str]:
    """The names of the reason bits set in `mask`; an unknown bit as its hex value."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASONS)
    bit = 1
    while unknown >= bit:
        if unknown & bit:
            names.append(f"0x{bit:x}")
        bit <<= 1
    return names


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlMonitor:
    """Reads NVML for CUDA device `device_index`, matched by PCI bus id (CUDA and NVML number
    devices differently, and CUDA_VISIBLE_DEVICES renumbers CUDA's). `pci_bus_id` defaults to
    the one CUDA reports for the device. Without nvidia-ml-py, or when NVML cannot start (no
    driver), sample() says why and reports available False."""

    def __init__(self, device_index: int = 0, pci_bus_id: str | None = None) -> None:
        self.device_index = device_index
        self.pci_bus_id = pci_bus_id
        self.reason: str | None = None
        self._nvml = None
        self._handle = None
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            self.reason = "nvidia-ml-py is not installed"
            return
        if pci_bus_id is None:
            pci_bus_id = cuda.device_properties(device_index)["pci_bus_id"]
        self.pci_bus_id = pci_bus_id
        try:
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id.encode())
        except nvml.NVMLError as e:
            self.reason = f"NVML unavailable for PCI bus id {pci_bus_id}: {e}"
            return
        self._nvml = nvml

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def _query(self, name: str, *args):
        """One NVML query; None where the device does not support it (power on some boards)."""
        try:
            return getattr(self._nvml, name)(self._handle, *args)
        except self._nvml.NVMLError:
            return None

    def _reason_mask(self) -> int | None:
        # Renamed "clocks event reasons" in newer NVML; older bindings have only the old name.
        for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            if hasattr(self._nvml, name):
                return self._query(name)
        return None

    def sample(self) -> dict:
        """Clocks (MHz), temperature (C), power (W) and clock-limiting reasons right now."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        mask = self._reason_mask()
        reasons = decode_throttle_reasons(mask) if mask is not None else []
        power_mw = self._query("nvmlDeviceGetPowerUsage")
        return {
            "available": True,
            "sm_clock_mhz": self._query("nvmlDeviceGetClockInfo", _CLOCK_SM),
            "mem_clock_mhz": self._query("nvmlDeviceGetClockInfo", _CLOCK_MEM),
            "max_sm_clock_mhz": self._query("nvmlDeviceGetMaxClockInfo", _CLOCK_SM),
            "temperature_c": self._query("nvmlDeviceGetTemperature", _TEMPERATURE_GPU),
            "power_w": power_mw / 1000 if power_mw is not None else None,
            "throttle_reasons": reasons,
            "throttled": any(reason in THROTTLING for reason in reasons),
            "method": ("NVML right after the samples; throttled when the driver reports a power cap, "
                       "thermal or hardware slowdown (not idle or a clock setting)"
                       + ("" if mask is not None else "; clock-limiting reasons not reported here")),
        }

    def static_info(self) -> dict:
        """What does not change during a run: driver version, power limit, clock settings."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        try:
            driver = _text(self._nvml.nvmlSystemGetDriverVersion())
        except self._nvml.NVMLError:
            driver = None
        limit_mw = self._query("nvmlDeviceGetEnforcedPowerLimit")
        return {
            "available": True,
            "pci_bus_id": self.pci_bus_id,
            "driver_version": driver,
            "power_limit_w": limit_mw / 1000 if limit_mw is not None else None,
            "applications_sm_clock_mhz": self._query("nvmlDeviceGetApplicationsClock", _CLOCK_SM),
            "applications_mem_clock_mhz": self._query("nvmlDeviceGetApplicationsClock", _CLOCK_MEM),
            "max_sm_clock_mhz": self._query("nvmlDeviceGetMaxClockInfo", _CLOCK_SM),
            "max_mem_clock_mhz": self._query("nvmlDeviceGetMaxClockInfo", _CLOCK_MEM),
        }
