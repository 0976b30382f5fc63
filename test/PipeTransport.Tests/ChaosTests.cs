using System.Buffers;
using System.Collections.Concurrent;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Pipelines;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>
/// Seeded random interleavings of everything an application and the transport's peer can do to a
/// connection at once, over every fd kind and both polling modes: reads with full and partial
/// advances, writes of 1 B to 1 MiB stamped with their stream offset, flushes,
/// <c>CancelPendingRead</c>/<c>CancelPendingFlush</c>, completing either direction, <see cref="FdConnection.Abort"/>
/// and <see cref="FdConnection.DisposeAsync"/>, from a writer, a reader and a disruptor task on each side.
/// <para>
/// Invariants: what a side received is a prefix of what the other sent (the stamp names each byte's
/// offset, so a lost, repeated or foreign byte shows); only documented exceptions; every call returns
/// soon after disposal; no task is left faulted and unobserved; the fds and the non-pool threads
/// return to their baseline; the reactors still echo 1 MiB on a fresh pair. A failure names its seed; <see cref="Replay"/> runs one seed again
/// (<c>PIPETRANSPORT_CHAOS_SEED</c>), and the <c>Soak</c> category runs for
/// <c>PIPETRANSPORT_SOAK_SECONDS</c> (default 60) per fixture.
/// </para>
/// </summary>
[TestFixtureSource(typeof(FdKinds), nameof(FdKinds.AllWithPolling))]
[NonParallelizable] // counts /proc/self/fd and threads
public sealed class ChaosTests
{
    /// <summary>The largest write.</summary>
    private const int MaxWrite = 1 << 20;

    /// <summary>Rounds per fixture in CI: ten fixtures stay well within a minute.</summary>
    private const int CiRounds = 100;

    /// <summary>How long the application's calls may take to return once both ends are disposed.</summary>
    private static readonly TimeSpan CallsEndAfterDisposal = TimeSpan.FromSeconds(2);

    private readonly string _kind;
    private readonly string _reactors;

    public ChaosTests(string kind, string reactors)
    {
        _kind = kind;
        _reactors = reactors;
    }

    [Test, CancelAfter(60_000)]
    public async Task RandomInterleavingsKeepEveryInvariant(CancellationToken ct)
    {
        int baseSeed = (Array.IndexOf(FdKinds.All, _kind) + 1) * 100_000 + (_reactors == FdKinds.HandOffReactors ? 50_000 : 0);
        await RunAsync(Enumerable.Range(baseSeed, CiRounds), ct);
    }

    [Test, Explicit("runs as long as PIPETRANSPORT_SOAK_SECONDS says"), Category("Soak"), CancelAfter(24 * 3600 * 1000)]
    public async Task Soak(CancellationToken ct)
    {
        int seconds = int.TryParse(Environment.GetEnvironmentVariable("PIPETRANSPORT_SOAK_SECONDS"), out int s) ? s : 60;
        var clock = Stopwatch.StartNew();
        int first = Random.Shared.Next(1_000_000, int.MaxValue / 2);
        await RunAsync(Enumerable.Range(first, int.MaxValue / 2).TakeWhile(_ => clock.Elapsed.TotalSeconds < seconds), ct);
    }

    [Test, Explicit("replays the seed in PIPETRANSPORT_CHAOS_SEED"), CancelAfter(60_000)]
    public async Task Replay(CancellationToken ct)
    {
        Assume.That(int.TryParse(Environment.GetEnvironmentVariable("PIPETRANSPORT_CHAOS_SEED"), out int seed), "set PIPETRANSPORT_CHAOS_SEED");
        await RunAsync([seed], ct);
    }

    private async Task RunAsync(IEnumerable<int> seeds, CancellationToken ct)
    {
        await EchoOneMebibyteAsync(ct); // the reactors, the pool and the timer exist before the baseline
        await Task.Delay(1, ct);
        int fdsBefore = TransportFdCount();
        Dictionary<string, int> threadsBefore = NonPoolThreads();
        int rounds = 0;
        var outcomes = new Dictionary<string, int>();

        // A task that faulted and was dropped is reported when the GC collects it: collect what
        // earlier tests left first, then count what the rounds leave.
        var unobserved = new ConcurrentQueue<Exception>();
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e) => unobserved.Enqueue(e.Exception);
        CollectGarbage();
        TaskScheduler.UnobservedTaskException += OnUnobserved;
        try
        {
            foreach (int seed in seeds)
            {
                try
                {
                    await new Round(_kind, FdKinds.Reactors(_reactors), seed, outcomes).RunAsync(ct);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    Assert.Fail($"seed {seed} ({_kind}, {_reactors}): {e}\nreplay: PIPETRANSPORT_CHAOS_SEED={seed} dotnet test --project test/PipeTransport.Tests -- --filter \"FullyQualifiedName~ChaosTests&Name~Replay\"");
                }

                rounds++;
            }

            CollectGarbage();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }

        Assert.That(unobserved, Is.Empty, () => $"unobserved task exceptions after {rounds} rounds:\n{string.Join("\n", unobserved)}");
        Assert.That(TransportFdCount(), Is.EqualTo(fdsBefore), $"fds after {rounds} rounds");
        Assert.That(NonPoolThreads(), Is.EquivalentTo(threadsBefore), "threads other than the thread pool's");
        await EchoOneMebibyteAsync(ct);
        TestContext.Out.WriteLine($"{rounds} rounds; how the calls ended: {string.Join(", ", outcomes.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}");
    }

    /// <summary>Collects and finalizes until what was dropped has been reported (a task's exception is reported by a finalizer).</summary>
    private static void CollectGarbage()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    private async Task EchoOneMebibyteAsync(CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, new FdConnectionOptions { ReactorGroup = FdKinds.Reactors(_reactors) }, ct);
        var sent = new TestData(42);
        var received = new TestData(0);
        Task echo = Task.Run(async () =>
        {
            await pair.B.Input.CopyToAsync(pair.B.Output, ct);
            await pair.B.Output.CompleteAsync();
        }, ct);
        Task write = Task.Run(async () => { await sent.WriteAsync(pair.A.Output, 1 << 20, 1, ct); await pair.A.Output.CompleteAsync(); }, ct);
        await received.ReadToEndAsync(pair.A.Input, 2, ct);
        await Task.WhenAll(echo, write);
        Assert.That(received.Length, Is.EqualTo(1 << 20));
        Assert.That(received.Hash, Is.EqualTo(sent.Hash));
    }

    /// <summary>fds of the kinds a connection holds: pipes, sockets, anonymous inodes and the test FIFOs.</summary>
    private static int TransportFdCount() =>
        FdTestHelpers.FdTable().Values.Count(t => !t.StartsWith('/') || t.Contains("/pt-fifo-", StringComparison.Ordinal));

    /// <summary>Threads by name (/proc truncates names to 15 characters), less the runtime's own.</summary>
    private static Dictionary<string, int> NonPoolThreads()
    {
        var names = new Dictionary<string, int>();
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            string name;
            try
            {
                name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
            }
            catch (IOException)
            {
                continue; // exited while we looked
            }

            // The runtime's own threads come and go (pool, GC, tiering); a thread blocked for a
            // connection would be ours or a long-running task's.
            if (!name.StartsWith(".NET ", StringComparison.Ordinal) || name.StartsWith(".NET Long", StringComparison.Ordinal))
            {
                names[name] = names.GetValueOrDefault(name) + 1;
            }
        }

        return names;
    }

    /// <summary>The abort reason the disruptor uses: documented, since the application chose it.</summary>
    private sealed class ChaosAbort() : Exception("chaos abort");

    /// <summary>One seeded round over a fresh pair.</summary>
    private sealed class Round(string kind, ReactorGroup? reactors, int seed, Dictionary<string, int> outcomes)
    {
        private readonly List<Task> _disposals = new();
        private readonly List<string> _log = new();

        public async Task RunAsync(CancellationToken ct)
        {
            var rng = new Random(seed);
            var options = new FdConnectionOptions
            {
                ReactorGroup = reactors,
                OutputPauseThreshold = 64 * 1024 << rng.Next(5),
                InputPauseThreshold = 64 * 1024 << rng.Next(5),
                InlineTransportScheduling = rng.Next(4) != 0,
            };
            options.OutputResumeThreshold = options.OutputPauseThreshold / 2;
            options.InputResumeThreshold = options.InputPauseThreshold / 2;
            await using ConnectedPair pair = await FdKinds.ConnectAsync(kind, options, ct);

            // A quarter of the rounds run undisturbed to their end: every byte must then arrive.
            bool undisturbed = rng.Next(4) == 0;
            // Otherwise a reader may never read (the writer then waits on backpressure when the end comes).
            var ab = new Stream(pair.A, pair.B, new Random(seed * 7 + 1), new Random(seed * 7 + 2), disturbed: !undisturbed);
            var ba = new Stream(pair.B, pair.A, new Random(seed * 7 + 3), new Random(seed * 7 + 4), disturbed: !undisturbed);
            Task[] work = [ab.WriteAsync(ct), ab.ReadAsync(ct), ba.WriteAsync(ct), ba.ReadAsync(ct)];
            Task disrupt = undisturbed ? Task.CompletedTask : DisruptAsync(pair, new Random(seed * 7 + 5), ct);
            if (undisturbed)
            {
                await Task.WhenAll(work);
            }
            else
            {
                // The round ends by itself or a moment after the disruptor's last action.
                await Task.WhenAny(Task.WhenAll(work), disrupt.ContinueWith(_ => Task.Delay(rng.Next(3), ct), ct).Unwrap());
            }

            // The end of every round: both ends torn down, whatever state they are in.
            pair.A.Abort(new ChaosAbort());
            pair.B.Abort(new ChaosAbort());
            await pair.A.DisposeAsync();
            await pair.B.DisposeAsync();
            Task all = Task.WhenAll(work.Append(disrupt).Concat(_disposals));
            if (await Task.WhenAny(all, Task.Delay(CallsEndAfterDisposal, ct)) != all)
            {
                Assert.Fail($"calls still pending {CallsEndAfterDisposal.TotalSeconds} s after disposal: A→B {ab.Where}, B→A {ba.Where}; " +
                    $"A {pair.A.DebugState}; B {pair.B.DebugState}; actions {string.Join(", ", _log)}");
            }

            await all; // surfaces the first undocumented exception
            foreach (string end in new[] { ab.WriterEnd, ab.ReaderEnd, ba.WriterEnd, ba.ReaderEnd })
            {
                outcomes[end] = outcomes.GetValueOrDefault(end) + 1;
            }
            ab.CheckPrefix();
            ba.CheckPrefix();
            if (undisturbed)
            {
                Assert.That((ab.Completed, ab.Received), Is.EqualTo((true, ab.Sent)), () => $"A→B undisturbed: {ab.Where}");
                Assert.That((ba.Completed, ba.Received), Is.EqualTo((true, ba.Sent)), () => $"B→A undisturbed: {ba.Where}");
            }
        }

        private async Task DisruptAsync(ConnectedPair pair, Random rng, CancellationToken ct)
        {
            await Task.Yield();
            int actions = rng.Next(1, 4);
            for (int i = 0; i < actions; i++)
            {
                int pause = rng.Next(6);
                if (pause > 0)
                {
                    await Task.Delay(pause, ct);
                }

                FdConnection target = rng.Next(2) == 0 ? pair.A : pair.B;
                string name = target == pair.A ? "A" : "B";
                switch (rng.Next(5))
                {
                    case 0:
                        _log.Add($"{name}.CancelPendingRead");
                        target.Input.CancelPendingRead();
                        break;
                    case 1:
                        _log.Add($"{name}.CancelPendingFlush");
                        target.Output.CancelPendingFlush();
                        break;
                    case 2:
                        _log.Add($"{name}.Abort");
                        target.Abort(new ChaosAbort());
                        break;
                    default:
                        _log.Add($"{name}.DisposeAsync");
                        _disposals.Add(DisposeAsync(target));
                        break;
                }
            }
        }
    }

    /// <summary>Disposal throws a write error no flush reported (documented); anything else fails the round.</summary>
    private static async Task DisposeAsync(FdConnection connection)
    {
        try
        {
            await connection.DisposeAsync();
        }
        catch (PipeTransportException)
        {
        }
    }

    /// <summary>One direction: a writer on one connection's Output, a reader on the other's Input.</summary>
    private sealed class Stream(FdConnection from, FdConnection to, Random writerRng, Random readerRng, bool disturbed)
    {
        private long _sent;
        private long _received;
        private string _writer = "not started";
        private string _reader = "not started";

        public long Sent => Volatile.Read(ref _sent);

        public long Received => Volatile.Read(ref _received);

        /// <summary>Both ends finished as a stream should: the writer completed, the reader saw EOF.</summary>
        public bool Completed => _writer == "completed" && _reader == "eof";

        public string WriterEnd => "writer " + _writer;

        public string ReaderEnd => "reader " + _reader;

        public string Where => $"writer {_writer} at {Sent}, reader {_reader} at {Received}";

        public async Task WriteAsync(CancellationToken ct)
        {
            await Task.Yield();
            PipeWriter output = from.Output;
            int writes = writerRng.Next(1, 16);
            try
            {
                for (int i = 0; i < writes; i++)
                {
                    int size = writerRng.Next(4) switch { 0 => 1, 1 => writerRng.Next(1, 256), 2 => writerRng.Next(256, 64 * 1024), _ => writerRng.Next(64 * 1024, MaxWrite + 1) };
                    FlushResult result;
                    if (writerRng.Next(2) == 0)
                    {
                        // GetMemory/Advance in blocks, then one flush.
                        _writer = "copying";
                        for (int left = size; left > 0;)
                        {
                            Memory<byte> memory = output.GetMemory();
                            int n = Math.Min(left, memory.Length);
                            Stamp(memory.Span[..n], _sent);
                            output.Advance(n);
                            Interlocked.Add(ref _sent, n);
                            left -= n;
                        }

                        _writer = "flushing";
                        result = await output.FlushAsync(ct);
                    }
                    else
                    {
                        byte[] bytes = new byte[size];
                        Stamp(bytes, _sent);
                        _writer = "writing";
                        Interlocked.Add(ref _sent, size); // once the call copied it, it counts as sent
                        result = await output.WriteAsync(bytes, ct);
                    }

                    if (result.IsCompleted)
                    {
                        _writer = "reader gone";
                        return;
                    }
                }

                _writer = "completing";
                await output.CompleteAsync();
                _writer = "completed";
            }
            catch (Exception e) when (Documented(e))
            {
                _writer = $"ended by {e.GetType().Name}";
            }
        }

        public async Task ReadAsync(CancellationToken ct)
        {
            await Task.Yield();
            PipeReader input = to.Input;
            if (disturbed && readerRng.Next(4) == 0)
            {
                _reader = "never reads";
                return;
            }

            try
            {
                while (true)
                {
                    _reader = "reading";
                    ReadResult result = await input.ReadAsync(ct);
                    ReadOnlySequence<byte> buffer = result.Buffer;
                    long offset = _received;
                    foreach (ReadOnlyMemory<byte> segment in buffer)
                    {
                        CheckStamp(segment.Span, offset);
                        offset += segment.Length;
                    }

                    // Consume all, or part and examine the rest (the pipe then waits for more).
                    long consume = buffer.Length == 0 || readerRng.Next(3) != 0 ? buffer.Length : readerRng.NextInt64(buffer.Length);
                    input.AdvanceTo(buffer.GetPosition(consume), buffer.End);
                    Interlocked.Add(ref _received, consume);
                    if (result.IsCompleted && consume == buffer.Length)
                    {
                        _reader = "eof";
                        return;
                    }

                    if (disturbed && readerRng.Next(200) == 0)
                    {
                        _reader = "completing";
                        input.Complete();
                        _reader = "completed";
                        return;
                    }
                }
            }
            catch (Exception e) when (Documented(e))
            {
                _reader = $"ended by {e.GetType().Name}";
            }
        }

        public void CheckPrefix() =>
            Assert.That(Received, Is.LessThanOrEqualTo(Sent), "received more than was sent");

        /// <summary>Each byte names its stream offset: offset k holds byte (k mod 8) of the little-endian k / 8.</summary>
        private static void Stamp(Span<byte> span, long offset)
        {
            for (int i = 0; i < span.Length; i++)
            {
                long k = offset + i;
                span[i] = (byte)((k >> 3) >> (int)((k & 7) * 8));
            }
        }

        private static void CheckStamp(ReadOnlySpan<byte> span, long offset)
        {
            Span<byte> expected = span.Length <= 4096 ? stackalloc byte[span.Length] : new byte[span.Length];
            Stamp(expected, offset);
            if (!span.SequenceEqual(expected))
            {
                int at = 0;
                while (span[at] == expected[at])
                {
                    at++;
                }

                throw new AssertionException($"byte at stream offset {offset + at} is {span[at]}, expected {expected[at]}: not a prefix of what was sent");
            }
        }

        private static bool Documented(Exception e) =>
            e is PipeTransportException or OperationCanceledException or ObjectDisposedException or ChaosAbort;
    }
}
