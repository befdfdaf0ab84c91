// pdata_oracle prints pdata's Value.AsString (what the Collector's ClickHouse exporter stores
// for an attribute) for typed values, one JSON object a line on stdin, one JSON string a line
// on stdout. Used by bench/attribute_text.py; not part of CI.
//
// A value is {"t": type, "v": value}: "empty"; "str" (v a string); "int" (v decimal text);
// "double" (v text strconv.ParseFloat reads: "2.5", "-0", "NaN", "+Inf"); "bool"; "bytes"
// (v base64); "slice" (v a list of values); "map" (v a list of {"k": key, "v": value}).
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

type typed struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v"`
}

type pair struct {
	K string `json:"k"`
	V typed  `json:"v"`
}

func text(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		panic(err)
	}
	return s
}

func fill(dst pcommon.Value, in typed) {
	switch in.T {
	case "empty":
	case "str":
		dst.SetStr(text(in.V))
	case "int":
		n, err := strconv.ParseInt(text(in.V), 10, 64)
		if err != nil {
			panic(err)
		}
		dst.SetInt(n)
	case "double":
		f, err := strconv.ParseFloat(text(in.V), 64)
		if err != nil {
			panic(err)
		}
		dst.SetDouble(f)
	case "bool":
		var b bool
		if err := json.Unmarshal(in.V, &b); err != nil {
			panic(err)
		}
		dst.SetBool(b)
	case "bytes":
		raw, err := base64.StdEncoding.DecodeString(text(in.V))
		if err != nil {
			panic(err)
		}
		dst.SetEmptyBytes().FromRaw(raw)
	case "slice":
		var items []typed
		if err := json.Unmarshal(in.V, &items); err != nil {
			panic(err)
		}
		slice := dst.SetEmptySlice()
		for _, item := range items {
			fill(slice.AppendEmpty(), item)
		}
	case "map":
		var pairs []pair
		if err := json.Unmarshal(in.V, &pairs); err != nil {
			panic(err)
		}
		m := dst.SetEmptyMap()
		for _, p := range pairs {
			fill(m.PutEmpty(p.K), p.V)
		}
	default:
		panic(fmt.Sprintf("unknown value type %q", in.T))
	}
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for scanner.Scan() {
		var in typed
		if err := json.Unmarshal(scanner.Bytes(), &in); err != nil {
			panic(err)
		}
		v := pcommon.NewValueEmpty()
		fill(v, in)
		if err := enc.Encode(v.AsString()); err != nil {
			panic(err)
		}
	}
	if err := scanner.Err(); err != nil {
		panic(err)
	}
}
