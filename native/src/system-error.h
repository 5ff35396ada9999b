// Errors thrown to JavaScript in the shape of Node's SystemError: code ('ENOENT'), errno (positive),
// syscall and path. Shared by the addon's modules.
#pragma once
#include <napi.h>

#include <cstring>
#include <string>

#include "../cmd/errno-names.h"

inline Napi::Error EciSystemError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  const std::string code = eci_errno_name(err);
  Napi::Error e = Napi::Error::New(env, code + ": " + std::strerror(err) + ", " + syscall + " '" + path + "'");
  e.Set("code", code);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", syscall);
  e.Set("path", path);
  return e;
}
