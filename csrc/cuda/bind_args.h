#pragma once
// Reading a kernel's argument struct from the dict the Python layer builds: every field named,
// every missing or mistyped one a ValueError naming it (never a crash in native code).
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace dlcb::cuda::bind {

namespace py = pybind11;

template <typename T>
T field(const py::dict& d, const char* name) {
  if (!d.contains(name)) throw py::value_error(std::string("missing argument field '") + name + "'");
  try {
    return d[name].cast<T>();
  } catch (const py::cast_error&) {
    throw py::value_error(std::string("argument field '") + name + "' has the wrong type");
  }
}

// Device pointers travel as Python ints.
inline const void* pointer(const py::dict& d, const char* name) {
  return reinterpret_cast<const void*>(field<std::uintptr_t>(d, name));
}

inline void* mutable_pointer(const py::dict& d, const char* name) {
  return reinterpret_cast<void*>(field<std::uintptr_t>(d, name));
}

template <typename Enum>
Enum enum_field(const py::dict& d, const char* name, int count) {
  const int v = field<int>(d, name);
  if (v < 0 || v >= count)
    throw py::value_error(std::string("argument field '") + name + "' is out of range");
  return static_cast<Enum>(v);
}

}  // namespace dlcb::cuda::bind
