/** Injection token of the TimeseriesBackend chosen at startup. */
export const TIMESERIES_BACKEND = Symbol('TIMESERIES_BACKEND');
