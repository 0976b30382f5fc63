using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Mono.Unix.Native;
using PipeTransport.Reactor;

namespace PipeTransport.Diagnostics;

/// <summary>
/// The <c>PipeTransport</c> meter and every instrument in it (named the OpenTelemetry way). The
/// instruments are all observable: the library keeps running totals and the callbacks read them
/// when a listener collects, so nothing is recorded per read or write and a process nobody listens
/// to pays only the totals. Bytes and pauses are counted per thread without interlocked operations
/// (<see cref="TransferCounters"/>), wake-ups per reactor by the one thread polling it, connections
/// and accept errors once each with an interlocked increment.
/// </summary>
internal static class TransportMetrics
{
    /// <summary>The meter's name: <c>dotnet-counters monitor --counters PipeTransport</c>, OpenTelemetry's <c>AddMeter("PipeTransport")</c>.</summary>
    public const string MeterName = "PipeTransport";

    // Accept errors are counted by errno number; Linux numbers stay below this.
    private const int ErrnoCount = 256;

    private static readonly string[] s_transports = ["unknown", "pipe", "unix", "tcp", "other"];
    private static readonly string[] s_reasons = ["none", "eof", "reset", "aborted", "disposed", "error"];
    private static readonly string[] s_pollingStates = ["dedicated_thread", "hand_off", "hand_off_suspended"];

    private static readonly long[] s_opened = new long[s_transports.Length];
    private static readonly long[] s_closed = new long[s_transports.Length * s_reasons.Length];
    private static readonly long[] s_acceptErrors = new long[ErrnoCount];
    private static readonly string?[] s_errnoNames = new string?[ErrnoCount];

    // Every thread that has counted (the retired entry holds the totals of threads that ended), and every running reactor.
    private static readonly List<TransferCounters> s_threads = [];
    private static readonly TransferCounters s_retired = new(null);
    private static readonly List<EpollReactor> s_reactors = [];

    // Time at the fd limit: how many listeners are there now, since when, and the time of earlier stays.
    private static readonly Lock s_fdLimitLock = new();
    private static int s_atFdLimit;
    private static long s_fdLimitSince;
    private static long s_fdLimitTicks;

    [ThreadStatic]
    private static TransferCounters? t_counters;

    private static readonly Meter s_meter = CreateMeter();

    /// <summary>Bytes a receive loop read from an fd into Input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Received(nint bytes) => (t_counters ?? AddThread()).BytesReceived += bytes;

    /// <summary>Bytes a send loop wrote from Output to an fd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sent(nint bytes) => (t_counters ?? AddThread()).BytesSent += bytes;

    /// <summary>The receive loop stopped reading: the application has not consumed Input's pause threshold.</summary>
    public static void InputPaused() => (t_counters ?? AddThread()).InputPauses++;

    /// <summary>An application's flush waits: Output holds its pause threshold that the peer has not taken yet.</summary>
    public static void OutputPaused() => (t_counters ?? AddThread()).OutputPauses++;

    public static void ConnectionOpened(ConnectionTransport transport) => Interlocked.Increment(ref s_opened[(int)transport]);

    public static void ConnectionClosed(ConnectionTransport transport, ConnectionEndReason reason) =>
        Interlocked.Increment(ref s_closed[((int)transport * s_reasons.Length) + (int)reason]);

    /// <summary><c>accept4</c> failed with <paramref name="errno"/> (positive), other than <c>EAGAIN</c>.</summary>
    public static void AcceptError(int errno) => Interlocked.Increment(ref s_acceptErrors[(uint)errno < ErrnoCount ? errno : 0]);

    /// <summary>A listener stopped accepting because the process or the system is out of fds; time at the limit runs.</summary>
    public static void FdLimitEntered()
    {
        lock (s_fdLimitLock)
        {
            if (s_atFdLimit++ == 0)
            {
                s_fdLimitSince = Stopwatch.GetTimestamp();
            }
        }
    }

    /// <summary>A listener at the fd limit accepts again; when none is left there, the time stops running.</summary>
    public static void FdLimitLeft()
    {
        lock (s_fdLimitLock)
        {
            if (s_atFdLimit > 0 && --s_atFdLimit == 0)
            {
                s_fdLimitTicks += Stopwatch.GetTimestamp() - s_fdLimitSince;
            }
        }
    }

    /// <summary>A reactor started: its wake-ups and polling mode are observed until it stops.</summary>
    public static void AddReactor(EpollReactor reactor)
    {
        lock (s_reactors)
        {
            s_reactors.Add(reactor);
        }
    }

    public static void RemoveReactor(EpollReactor reactor)
    {
        lock (s_reactors)
        {
            s_reactors.Remove(reactor);
        }
    }

    private static TransferCounters AddThread()
    {
        var counters = new TransferCounters(Thread.CurrentThread);
        lock (s_threads)
        {
            RetireEndedThreads();
            s_threads.Add(counters);
        }

        return t_counters = counters;
    }

    /// <summary>Under the list's lock: the totals of threads that ended move to the retired entry (the list does not grow with thread churn).</summary>
    private static void RetireEndedThreads()
    {
        for (int i = s_threads.Count - 1; i >= 0; i--)
        {
            if (s_threads[i].Owner is { IsAlive: false })
            {
                s_threads[i].AddTo(s_retired);
                s_threads.RemoveAt(i);
            }
        }
    }

    private static TransferCounters Totals()
    {
        var total = new TransferCounters(null);
        lock (s_threads)
        {
            RetireEndedThreads();
            s_retired.AddTo(total);
            foreach (TransferCounters counters in s_threads)
            {
                counters.AddTo(total);
            }
        }

        return total;
    }

    private static Meter CreateMeter()
    {
        var meter = new Meter(MeterName, typeof(TransportMetrics).Assembly.GetName().Version?.ToString(3));
        meter.CreateObservableCounter("pipetransport.connection.opened", ObserveOpened, "{connection}",
            "Connections opened: accepted, connected, opened (FIFOs) or adopted fds.");
        meter.CreateObservableUpDownCounter("pipetransport.connection.active", ObserveActive, "{connection}",
            "Connections open now (opened and not yet closed: both directions ended, or aborted or disposed).");
        meter.CreateObservableCounter("pipetransport.connection.closed", ObserveClosed, "{connection}",
            "Connections closed, by what ended them first (pipetransport.connection.close_reason: eof, reset, aborted, disposed, error).");
        meter.CreateObservableCounter("pipetransport.io", ObserveIo, "By",
            "Bytes read from fds into Input (network.io.direction=receive) and written from Output to fds (transmit).");
        meter.CreateObservableCounter("pipetransport.connection.pauses", ObservePauses, "{pause}",
            "Backpressure pauses: the receive loop stopped reading because the application had not consumed Input (pipetransport.direction=input), or an application's flush waited because the peer had not taken Output (output).");
        meter.CreateObservableCounter("pipetransport.accept.errors", ObserveAcceptErrors, "{error}",
            "Failed accept4 calls other than EAGAIN, by errno name (error.type).");
        meter.CreateObservableCounter("pipetransport.fd_limit.time", ObserveFdLimitTime, "s",
            "Time during which at least one listener was at the fd limit (EMFILE, ENFILE) and held back accepting.");
        meter.CreateObservableCounter("pipetransport.reactor.wakeups", ObserveWakeUps, "{wakeup}",
            "epoll_wait calls of a reactor that returned events (by the reactor thread or, with hand-off, a pool turn).");
        meter.CreateObservableCounter("pipetransport.reactor.events", ObserveEvents, "{event}",
            "Readiness events a reactor dispatched; divided by pipetransport.reactor.wakeups, the events per wake-up.");
        meter.CreateObservableGauge("pipetransport.reactor.polling", ObservePolling, "{reactor}",
            "Who polls each reactor now: 1 for its current pipetransport.reactor.polling state (dedicated_thread, hand_off, hand_off_suspended), 0 for the others.");
        return meter;
    }

    private static KeyValuePair<string, object?> TransportTag(int transport) => new("network.transport", s_transports[transport]);

    private static KeyValuePair<string, object?> ReactorTag(EpollReactor reactor) => new("pipetransport.reactor", reactor.MetricsId);

    private static IEnumerable<Measurement<long>> ObserveOpened()
    {
        var measurements = new List<Measurement<long>>();
        for (int t = 0; t < s_opened.Length; t++)
        {
            long opened = Volatile.Read(ref s_opened[t]);
            if (opened != 0)
            {
                measurements.Add(new(opened, TransportTag(t)));
            }
        }

        return measurements;
    }

    private static IEnumerable<Measurement<long>> ObserveActive()
    {
        var measurements = new List<Measurement<long>>();
        for (int t = 0; t < s_opened.Length; t++)
        {
            long closed = 0;
            for (int r = 0; r < s_reasons.Length; r++)
            {
                closed += Volatile.Read(ref s_closed[(t * s_reasons.Length) + r]);
            }

            long opened = Volatile.Read(ref s_opened[t]);
            if (opened != 0)
            {
                measurements.Add(new(opened - closed, TransportTag(t)));
            }
        }

        return measurements;
    }

    private static IEnumerable<Measurement<long>> ObserveClosed()
    {
        var measurements = new List<Measurement<long>>();
        for (int t = 0; t < s_opened.Length; t++)
        {
            for (int r = 0; r < s_reasons.Length; r++)
            {
                long closed = Volatile.Read(ref s_closed[(t * s_reasons.Length) + r]);
                if (closed != 0)
                {
                    measurements.Add(new(closed, TransportTag(t), new("pipetransport.connection.close_reason", s_reasons[r])));
                }
            }
        }

        return measurements;
    }

    private static IEnumerable<Measurement<long>> ObserveIo()
    {
        TransferCounters total = Totals();
        return
        [
            new(total.BytesReceived, new KeyValuePair<string, object?>("network.io.direction", "receive")),
            new(total.BytesSent, new KeyValuePair<string, object?>("network.io.direction", "transmit")),
        ];
    }

    private static IEnumerable<Measurement<long>> ObservePauses()
    {
        TransferCounters total = Totals();
        return
        [
            new(total.InputPauses, new KeyValuePair<string, object?>("pipetransport.direction", "input")),
            new(total.OutputPauses, new KeyValuePair<string, object?>("pipetransport.direction", "output")),
        ];
    }

    private static IEnumerable<Measurement<long>> ObserveAcceptErrors()
    {
        var measurements = new List<Measurement<long>>();
        for (int errno = 0; errno < ErrnoCount; errno++)
        {
            long errors = Volatile.Read(ref s_acceptErrors[errno]);
            if (errors != 0)
            {
                // The enum's name, not Mono's native conversion: a collection at EMFILE must not load a library.
                string name = s_errnoNames[errno] ??= errno == 0 ? "other" : ((Errno)errno).ToString();
                measurements.Add(new(errors, new KeyValuePair<string, object?>("error.type", name)));
            }
        }

        return measurements;
    }

    private static double ObserveFdLimitTime()
    {
        long ticks;
        lock (s_fdLimitLock)
        {
            ticks = s_fdLimitTicks + (s_atFdLimit > 0 ? Stopwatch.GetTimestamp() - s_fdLimitSince : 0);
        }

        return (double)ticks / Stopwatch.Frequency;
    }

    private static IEnumerable<Measurement<long>> ObserveWakeUps()
    {
        lock (s_reactors)
        {
            return s_reactors.ConvertAll(r => new Measurement<long>(r.WakeUps, ReactorTag(r)));
        }
    }

    private static IEnumerable<Measurement<long>> ObserveEvents()
    {
        lock (s_reactors)
        {
            return s_reactors.ConvertAll(r => new Measurement<long>(r.EventsDispatched, ReactorTag(r)));
        }
    }

    private static IEnumerable<Measurement<int>> ObservePolling()
    {
        var measurements = new List<Measurement<int>>();
        lock (s_reactors)
        {
            foreach (EpollReactor reactor in s_reactors)
            {
                int current = !reactor.HandsOff ? 0 : reactor.HandOffSuspended ? 2 : 1;
                for (int state = 0; state < s_pollingStates.Length; state++)
                {
                    measurements.Add(new(state == current ? 1 : 0, ReactorTag(reactor), new("pipetransport.reactor.polling", s_pollingStates[state])));
                }
            }
        }

        return measurements;
    }
}
