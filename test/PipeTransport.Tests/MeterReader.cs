using System.Diagnostics.Metrics;
using PipeTransport.Diagnostics;

namespace PipeTransport.Tests;

/// <summary>
/// Reads the <c>PipeTransport</c> meter the way a collector does: a <see cref="MeterListener"/> that
/// enables every instrument of the meter and, on <see cref="Collect"/>, has the observable ones report.
/// </summary>
internal sealed class MeterReader : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<Instrument> _instruments = [];
    private readonly List<Measured> _measurements = [];

    public MeterReader()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == TransportMetrics.MeterName)
            {
                lock (_instruments)
                {
                    _instruments.Add(instrument);
                }

                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    public IReadOnlyList<Instrument> Instruments
    {
        get
        {
            lock (_instruments)
            {
                return _instruments.ToArray();
            }
        }
    }

    /// <summary>What every instrument reports now.</summary>
    public Snapshot Collect()
    {
        lock (_measurements)
        {
            _measurements.Clear();
            _listener.RecordObservableInstruments();
            return new Snapshot(_measurements.ToArray());
        }
    }

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, string?>();
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            copy[tag.Key] = tag.Value?.ToString();
        }

        lock (_measurements)
        {
            _measurements.Add(new Measured(instrument.Name, value, copy));
        }
    }

    public sealed record Measured(string Instrument, double Value, IReadOnlyDictionary<string, string?> Tags);

    public sealed class Snapshot(IReadOnlyList<Measured> measurements)
    {
        public IReadOnlyList<Measured> Measurements => measurements;

        /// <summary>The sum of <paramref name="instrument"/>'s measurements that carry all of <paramref name="tags"/> ("key=value").</summary>
        public double Sum(string instrument, params string[] tags) => Matching(instrument, tags).Sum(m => m.Value);

        public IEnumerable<Measured> Matching(string instrument, params string[] tags) =>
            measurements.Where(m => m.Instrument == instrument && tags.All(t =>
            {
                string[] kv = t.Split('=', 2);
                return m.Tags.TryGetValue(kv[0], out string? v) && v == kv[1];
            }));

        public override string ToString() =>
            string.Join("\n", measurements.Select(m => $"{m.Instrument}{{{string.Join(",", m.Tags.Select(t => $"{t.Key}={t.Value}"))}}} = {m.Value}"));
    }
}
