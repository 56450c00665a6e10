// Number formatting shared by the dashboard's scripts; the same rules as web/format.py
// (value, with_unit, choose_key_metrics), so a refreshed row reads like a rendered one.
(function () {
  "use strict";
  var BINARY = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];

  function value(v) {
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return v.toLocaleString("en-US");
      return Math.abs(v) < 1000 ? String(Number(v.toPrecision(3))) : Math.round(v).toLocaleString("en-US");
    }
    return String(v);
  }

  function withUnit(v, unit) {
    if (!unit || typeof v !== "number") return value(v);
    if (unit === "B" || unit === "B/s") {
      var scaled = v, prefix = 0;
      while (Math.abs(scaled) >= 1024 && prefix < BINARY.length - 1) { scaled /= 1024; prefix += 1; }
      return (prefix === 0 ? value(v) : String(Number(scaled.toPrecision(3)))) + " " + BINARY[prefix] + unit;
    }
    if (unit.charAt(0) === "%" || unit.charAt(0) === "/") return value(v) + unit;
    return value(v) + " " + unit;
  }

  function matches(declaredKey, flatKey) {
    if (declaredKey.indexOf("[") >= 0) return flatKey === declaredKey;
    return flatKey === declaredKey || flatKey.indexOf(declaredKey + "[") === 0;
  }

  // declared: [[key, unit], ...] of the target's kind; returns [[flatKey, unit], ...]
  function chooseKeyMetrics(metrics, declared, limit) {
    var keys = Object.keys(metrics || {}).sort();
    var out = [];
    var taken = {};
    for (var i = 0; i < (declared || []).length && out.length < limit; i++) {
      for (var j = 0; j < keys.length && out.length < limit; j++) {
        if (!taken[keys[j]] && matches(declared[i][0], keys[j])) {
          out.push([keys[j], declared[i][1]]);
          taken[keys[j]] = true;
        }
      }
    }
    if (out.length) return out;
    return keys.slice(0, limit).map(function (k) { return [k, ""]; });
  }

  window.DialwatchFormat = { value: value, withUnit: withUnit, chooseKeyMetrics: chooseKeyMetrics };
})();
