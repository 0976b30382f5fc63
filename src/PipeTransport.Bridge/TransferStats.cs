using System.Diagnostics;
using System.Globalization;

namespace PipeTransport.Bridge;

/// <summary>
/// Byte counters of all directions and the connections of --fork, with an optional pv-like progress
/// line on stderr. On a terminal the line is redrawn every second; otherwise (a log) a line is written
/// only when bytes moved or connections opened or closed since the last one, so an idle server is quiet.
/// </summary>
internal sealed class TransferStats : IAsyncDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly Stopwatch _elapsed = Stopwatch.StartNew();
    private readonly List<Func<long>> _active = [];
    private readonly TextWriter _output;
    private readonly bool _interactive;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _progress;
    private long _finished;
    private long _opened;
    private long _closed;
    private int _lineLength;

    public TransferStats(bool show, TextWriter output)
    {
        _output = output;
        _interactive = StandardError.IsTerminal;
        _progress = show ? ShowProgressAsync() : Task.CompletedTask;
        Show = show;
    }

    public bool Show { get; }

    /// <summary>Tracks a live counter until the returned handle is disposed (its final value is kept).</summary>
    public IDisposable Track(Func<long> counter)
    {
        lock (_active) _active.Add(counter);
        return new Tracking(this, counter);
    }

    /// <summary>Counts a connection accepted by --fork.</summary>
    public void ConnectionOpened() => Interlocked.Increment(ref _opened);

    /// <summary>Counts a connection of --fork that ended.</summary>
    public void ConnectionClosed() => Interlocked.Increment(ref _closed);

    public long TotalBytes
    {
        get
        {
            lock (_active)
            {
                long total = _finished;
                foreach (Func<long> counter in _active) total += counter();
                return total;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _progress.ConfigureAwait(false);
        _elapsed.Stop();
        if (!Show) return;
        long bytes = TotalBytes;
        double seconds = Math.Max(_elapsed.Elapsed.TotalSeconds, 1e-9);
        if (_interactive && _lineLength > 0) _output.Write('\r' + new string(' ', _lineLength) + '\r');
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Program.Name}: {bytes} bytes ({FormatBytes(bytes)}) in {seconds:0.000} s, {FormatBytes((long)(bytes / seconds))}/s"));
    }

    private async Task ShowProgressAsync()
    {
        using var timer = new PeriodicTimer(Interval);
        long lastBytes = 0;
        (long Opened, long Closed) lastConnections = (0, 0);
        TimeSpan lastTime = TimeSpan.Zero;
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                long bytes = TotalBytes;
                (long Opened, long Closed) connections = (Interlocked.Read(ref _opened), Interlocked.Read(ref _closed));
                TimeSpan now = _elapsed.Elapsed;
                bool changed = bytes != lastBytes || connections != lastConnections;
                double rate = (bytes - lastBytes) / Math.Max((now - lastTime).TotalSeconds, 1e-9);
                (lastBytes, lastTime, lastConnections) = (bytes, now, connections);
                if (!_interactive && !changed)
                    continue;
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"{FormatBytes(bytes),10} {now:h\\:mm\\:ss} [{FormatBytes((long)rate),10}/s]");
                if (connections.Opened > 0)
                    line += string.Create(CultureInfo.InvariantCulture,
                        $" {connections.Opened - connections.Closed} open, {connections.Closed} closed");
                if (_interactive)
                {
                    _output.Write('\r' + line.PadRight(_lineLength));
                    _lineLength = line.Length;
                }
                else
                {
                    _output.WriteLine($"{Program.Name}: {line.Trim()}");
                }
                _output.Flush();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.00} {units[unit]}");
    }

    private sealed class Tracking(TransferStats stats, Func<long> counter) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            lock (stats._active)
            {
                stats._active.Remove(counter);
                stats._finished += counter();
            }
        }
    }
}
