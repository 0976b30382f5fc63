using System.Diagnostics;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// Every error the soak saw, counted by source and kind and classified: expected are refusals, resets
/// and timeouts of new connections while the server is at its fd limit (from the start of a period
/// until a fresh connection is served again, plus <see cref="Grace"/>); anything else fails the soak.
/// The clients' own aborts are the chaos, not errors; the server counts the resets they cause.
/// </summary>
internal sealed class SoakLedger
{
    /// <summary>Time after the first served connection during which late timeouts of the period still count as expected.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(4);

    private const int MaxDetail = 2000;

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<(string Source, string Kind, bool Expected), Entry> _entries = [];
    private readonly List<(double Start, double End)> _fdLimitWindows = [];
    private double? _openWindowStart;

    /// <summary>Seconds since the soak started.</summary>
    public double Now => _clock.Elapsed.TotalSeconds;

    public void OpenFdLimitWindow()
    {
        lock (_entries)
        {
            _openWindowStart = Now;
        }
    }

    /// <summary>Closes the current fd-limit window <see cref="Grace"/> from now.</summary>
    public void CloseFdLimitWindow()
    {
        lock (_entries)
        {
            if (_openWindowStart is { } start)
            {
                _fdLimitWindows.Add((start, Now + Grace.TotalSeconds));
                _openWindowStart = null;
            }
        }
    }

    /// <summary>Whether [<paramref name="from"/>, <paramref name="to"/>] (seconds) touches an fd-limit period.</summary>
    public bool DuringFdLimit(double from, double to)
    {
        lock (_entries)
        {
            return (_openWindowStart is { } open && to >= open) || _fdLimitWindows.Any(w => from <= w.End && to >= w.Start);
        }
    }

    /// <summary>Counts an error that is expected only inside an fd-limit period.</summary>
    public void FdLimitOnly(string source, string kind, double from, string? detail = null) =>
        Add(source, kind, DuringFdLimit(from, Now), 1, detail);

    /// <summary>Counts an error that always fails the soak.</summary>
    public void Unexpected(string source, string kind, string? detail = null, long count = 1) => Add(source, kind, false, count, detail);

    public void Add(string source, string kind, bool expected, long count, string? detail)
    {
        if (count <= 0)
        {
            return;
        }

        lock (_entries)
        {
            if (!_entries.TryGetValue((source, kind, expected), out var entry))
            {
                _entries[(source, kind, expected)] = entry = new Entry();
            }

            entry.Count += count;
            if (detail is not null && entry.Examples.Count < 3)
            {
                entry.Examples.Add($"t={Now:0}s {(detail.Length > MaxDetail ? detail[..MaxDetail] + "…" : detail)}");
            }
        }
    }

    public long UnexpectedCount
    {
        get
        {
            lock (_entries)
            {
                return _entries.Where(e => !e.Key.Expected).Sum(e => e.Value.Count);
            }
        }
    }

    public IReadOnlyList<(string Source, string Kind, bool Expected, long Count, IReadOnlyList<string> Examples)> Snapshot()
    {
        lock (_entries)
        {
            return _entries
                .OrderBy(e => e.Key.Expected).ThenBy(e => e.Key.Source, StringComparer.Ordinal).ThenBy(e => e.Key.Kind, StringComparer.Ordinal)
                .Select(e => (e.Key.Source, e.Key.Kind, e.Key.Expected, e.Value.Count, (IReadOnlyList<string>)e.Value.Examples.ToArray()))
                .ToArray();
        }
    }

    private sealed class Entry
    {
        public long Count;
        public readonly List<string> Examples = [];
    }
}
