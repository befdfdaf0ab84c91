module tracepipe/bench/pdata_oracle

go 1.26

// pdata of the Collector 0.165 (core v1.71.0), as ../shared/peers/otelcol builds it.
require go.opentelemetry.io/collector/pdata v1.71.0
