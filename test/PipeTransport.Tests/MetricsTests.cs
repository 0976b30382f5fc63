using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Moq;
using NUnit.Framework;
using PipeTransport.Diagnostics;
using PipeTransport.Interop;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// The <c>PipeTransport</c> meter, read with a <see cref="System.Diagnostics.Metrics.MeterListener"/> as
/// a collector reads it. The totals are process-wide, so each test compares what it saw before and
/// after its own connections (the fixture does not run beside other tests).
/// </summary>
[NonParallelizable]
public sealed class MetricsTests
{
    private const string Opened = "pipetransport.connection.opened";
    private const string Active = "pipetransport.connection.active";
    private const string Closed = "pipetransport.connection.closed";
    private const string Io = "pipetransport.io";
    private const string Pauses = "pipetransport.connection.pauses";

    [Test, CancelAfter(10_000)]
    public void Every_instrument_has_a_unit_and_a_description(CancellationToken ct)
    {
        _ = ReactorGroup.Default; // the meter exists once the library runs
        using var reader = new MeterReader();

        Assert.That(reader.Instruments.Select(i => i.Name), Is.SupersetOf(new[]
        {
            Opened, Active, Closed, Io, Pauses, "pipetransport.accept.errors", "pipetransport.fd_limit.time",
            "pipetransport.reactor.wakeups", "pipetransport.reactor.events", "pipetransport.reactor.polling",
        }));
        Assert.Multiple(() =>
        {
            foreach (var instrument in reader.Instruments)
            {
                Assert.That(instrument.Name, Does.StartWith("pipetransport."));
                Assert.That(instrument.Unit, Is.Not.Null.And.Not.Empty, instrument.Name);
                Assert.That(instrument.Description, Is.Not.Null.And.Not.Empty, instrument.Name);
            }
        });
    }

    /// <summary>Each kind of connection is counted under its <c>network.transport</c> while open, and as closed by EOF once both sides half-closed.</summary>
    [TestCase(FdKinds.FifoPair, "pipe"), TestCase(FdKinds.AnonymousPipes, "pipe"), TestCase(FdKinds.SocketPair, "unix")]
    [TestCase(FdKinds.Unix, "unix"), TestCase(FdKinds.Tcp, "tcp")]
    [CancelAfter(20_000)]
    public async Task Connections_are_counted_by_transport_and_close_by_EOF(string kind, string transport, CancellationToken ct)
    {
        using var reader = new MeterReader();
        string tag = $"network.transport={transport}";
        MeterReader.Snapshot before = reader.Collect();

        await using ConnectedPair pair = await FdKinds.ConnectAsync(kind, null, ct);
        MeterReader.Snapshot open = reader.Collect();
        Assert.That(open.Sum(Opened, tag) - before.Sum(Opened, tag), Is.EqualTo(2), open.ToString());
        Assert.That(open.Sum(Active, tag) - before.Sum(Active, tag), Is.EqualTo(2), open.ToString());

        // Both sides half-close and read the other's EOF: both directions of both ends are over.
        await pair.A.Output.CompleteAsync();
        Assert.That(await ReadToEndAsync(pair.B.Input, ct), Is.Empty);
        await pair.B.Output.CompleteAsync();
        Assert.That(await ReadToEndAsync(pair.A.Input, ct), Is.Empty);

        await WaitForAsync(reader, s => s.Sum(Closed, tag, "pipetransport.connection.close_reason=eof") - before.Sum(Closed, tag, "pipetransport.connection.close_reason=eof") == 2,
            "two connections closed by EOF", ct);
        MeterReader.Snapshot after = reader.Collect();
        Assert.That(after.Sum(Active, tag), Is.EqualTo(before.Sum(Active, tag)), after.ToString());
    }

    [Test, CancelAfter(10_000)]
    public async Task A_client_reset_closes_the_connection_as_reset(CancellationToken ct)
    {
        using var reader = new MeterReader();
        MeterReader.Snapshot before = reader.Collect();
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint, ct);
        await using FdConnection server = (await listener.AcceptAsync(ct))!;
        ValueTask<ReadResult> read = server.Input.ReadAsync(ct);

        client.LingerState = new LingerOption(true, 0); // close sends RST
        client.Close();

        Assert.That(async () => await read, Throws.InstanceOf<FdConnectionResetException>());
        await WaitForClosedAsync(reader, before, "tcp", "reset", 1, ct);
    }

    [Test, CancelAfter(10_000)]
    public async Task An_abort_and_a_disposal_close_as_aborted_and_disposed(CancellationToken ct)
    {
        using var reader = new MeterReader();
        MeterReader.Snapshot before = reader.Collect();
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();

        a.Abort();
        await a.DisposeAsync();
        await b.DisposeAsync();

        await WaitForClosedAsync(reader, before, "unix", "aborted", 1, ct);
        await WaitForClosedAsync(reader, before, "unix", "disposed", 1, ct);
    }

    /// <summary>An I/O error (EIO, through the syscall seam: a real fd does not produce it on demand) closes the connection as an error.</summary>
    [Test, CancelAfter(10_000)]
    public async Task An_IO_error_closes_the_connection_as_error(CancellationToken ct)
    {
        Mock<ISyscalls> mock = SyscallSeamTests.Forwarding();
        mock.Setup(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>())).Returns(-(nint)Libc.EIO);
        using var reader = new MeterReader();
        MeterReader.Snapshot before = reader.Collect();
        (SafeFdHandle r1, SafeFdHandle w1) = Pipe();
        (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
        FdConnection a = FdConnection.FromFds(r1, w2, new FdConnectionOptions { Syscalls = mock.Object });
        FdConnection b = FdConnection.FromFds(r2, w1);
        await using (a)
        await using (b)
        {
            await b.Output.WriteAsync("x"u8.ToArray(), ct);
            Assert.That(async () => await a.Input.ReadAsync(ct), Throws.InstanceOf<PipeTransportException>());
            await a.Output.CompleteAsync(); // the other direction ends normally: the error is what ended the connection
        }

        await WaitForClosedAsync(reader, before, "pipe", "error", 1, ct);
    }

    /// <summary>The bytes counted both ways are exactly what the test moved (sends are counted when the write returns: wait for it).</summary>
    [TestCase(FdKinds.SocketPair), TestCase(FdKinds.FifoPair), TestCase(FdKinds.Tcp)]
    [CancelAfter(20_000)]
    public async Task Bytes_read_and_written_are_what_the_connections_moved(string kind, CancellationToken ct)
    {
        const int ToB = 3 * 1024 * 1024 + 17;
        const int ToA = 700 * 1024 + 5;
        using var reader = new MeterReader();
        await using ConnectedPair pair = await FdKinds.ConnectAsync(kind, null, ct);
        MeterReader.Snapshot before = reader.Collect();

        Task<byte[]> atB = ReadToEndAsync(pair.B.Input, ct);
        Task<byte[]> atA = ReadToEndAsync(pair.A.Input, ct);
        await pair.A.Output.WriteAsync(RandomBytes(ToB, 1), ct);
        await pair.A.Output.CompleteAsync();
        await pair.B.Output.WriteAsync(RandomBytes(ToA, 2), ct);
        await pair.B.Output.CompleteAsync();
        Assert.That((await atB).Length, Is.EqualTo(ToB));
        Assert.That((await atA).Length, Is.EqualTo(ToA));

        await WaitForAsync(reader, s =>
                s.Sum(Io, "network.io.direction=receive") - before.Sum(Io, "network.io.direction=receive") == ToA + ToB
                && s.Sum(Io, "network.io.direction=transmit") - before.Sum(Io, "network.io.direction=transmit") == ToA + ToB,
            $"{ToA + ToB} bytes counted each way", ct);
    }

    /// <summary>
    /// A reader that does not read: the receive loop pauses at Input's threshold (an input pause), the
    /// kernel buffers fill, and the writer's flush waits at Output's threshold (an output pause).
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task Backpressure_pauses_are_counted_for_input_and_output(CancellationToken ct)
    {
        var options = new FdConnectionOptions
        {
            InputPauseThreshold = 64 * 1024,
            InputResumeThreshold = 32 * 1024,
            OutputPauseThreshold = 64 * 1024,
            OutputResumeThreshold = 32 * 1024,
        };
        using var reader = new MeterReader();
        await using ConnectedPair pair = await FdKinds.ConnectAsync(FdKinds.SocketPair, options, ct);
        MeterReader.Snapshot before = reader.Collect();

        byte[] data = RandomBytes(8 * 1024 * 1024, 3);
        Task write = Task.Run(async () =>
        {
            await pair.A.Output.WriteAsync(data, ct);
            await pair.A.Output.CompleteAsync();
        }, ct);

        // The receive loop starts with the first read; while it is not advanced, Input fills up to its threshold.
        ReadResult first = await pair.B.Input.ReadAsync(ct);
        await WaitForAsync(reader, s =>
                s.Sum(Pauses, "pipetransport.direction=input") > before.Sum(Pauses, "pipetransport.direction=input")
                && s.Sum(Pauses, "pipetransport.direction=output") > before.Sum(Pauses, "pipetransport.direction=output"),
            "an input pause and an output pause", ct);
        pair.B.Input.AdvanceTo(first.Buffer.Start);

        Assert.That((await ReadToEndAsync(pair.B.Input, ct)).Length, Is.EqualTo(data.Length));
        await write;
    }

    /// <summary>Each reactor reports its wake-ups, the events they brought, and who polls it, until it stops.</summary>
    [TestCase(ReactorPolling.DedicatedThread, "dedicated_thread"), TestCase(ReactorPolling.HandOffToThreadPool, "hand_off")]
    [CancelAfter(20_000)]
    public async Task Reactors_report_wake_ups_events_and_polling_mode(ReactorPolling polling, string state, CancellationToken ct)
    {
        using var reader = new MeterReader();
        var group = new ReactorGroup(1, true, polling);
        string reactor = $"pipetransport.reactor={group.Next().MetricsId}";
        try
        {
            (FdConnection a, FdConnection b) = FdConnection.CreatePair(new FdConnectionOptions { ReactorGroup = group });
            await using (a)
            await using (b)
            {
                for (int i = 0; i < 20; i++)
                {
                    await a.Output.WriteAsync(new byte[] { (byte)i }, ct);
                    Assert.That(await ReadExactlyAsync(b.Input, 1, ct), Is.EqualTo(new[] { (byte)i }));
                }
            }

            MeterReader.Snapshot s = await WaitForAsync(reader, s => s.Sum("pipetransport.reactor.wakeups", reactor) > 0, "wake-ups", ct);
            Assert.That(s.Sum("pipetransport.reactor.events", reactor), Is.GreaterThan(0), s.ToString());

            // A hand-off reactor whose pool turns were slow polls alone for a while: still a hand-off reactor.
            double current = s.Sum("pipetransport.reactor.polling", reactor, $"pipetransport.reactor.polling={state}")
                + (polling == ReactorPolling.HandOffToThreadPool ? s.Sum("pipetransport.reactor.polling", reactor, "pipetransport.reactor.polling=hand_off_suspended") : 0);
            Assert.That(current, Is.EqualTo(1), s.ToString());
            Assert.That(s.Sum("pipetransport.reactor.polling", reactor), Is.EqualTo(1), s.ToString());
        }
        finally
        {
            group.Dispose();
        }

        Assert.That(reader.Collect().Matching("pipetransport.reactor.polling", reactor), Is.Empty, "a stopped reactor is no longer reported");
    }

    [Test, CancelAfter(10_000)]
    public void Accept_errors_are_counted_by_errno_name(CancellationToken ct)
    {
        using var reader = new MeterReader();
        MeterReader.Snapshot before = reader.Collect();

        TransportMetrics.AcceptError(Libc.EMFILE);
        TransportMetrics.AcceptError(Libc.EMFILE);
        TransportMetrics.AcceptError(Libc.ECONNABORTED);

        MeterReader.Snapshot after = reader.Collect();
        Assert.That(after.Sum("pipetransport.accept.errors", "error.type=EMFILE") - before.Sum("pipetransport.accept.errors", "error.type=EMFILE"), Is.EqualTo(2), after.ToString());
        Assert.That(after.Sum("pipetransport.accept.errors", "error.type=ECONNABORTED") - before.Sum("pipetransport.accept.errors", "error.type=ECONNABORTED"), Is.EqualTo(1), after.ToString());
    }

    /// <summary>The time at the fd limit runs while a listener is there (also before it leaves) and stops when the last one leaves.</summary>
    [Test, CancelAfter(10_000)]
    public async Task Time_at_the_fd_limit_runs_while_a_listener_is_there(CancellationToken ct)
    {
        const string Time = "pipetransport.fd_limit.time";
        using var reader = new MeterReader();
        double before = reader.Collect().Sum(Time);

        TransportMetrics.FdLimitEntered();
        TransportMetrics.FdLimitEntered();
        await WaitForAsync(reader, s => s.Sum(Time) > before, "time at the limit running", ct);
        TransportMetrics.FdLimitLeft();
        double oneLeft = reader.Collect().Sum(Time);
        await WaitForAsync(reader, s => s.Sum(Time) > oneLeft, "time still running while one listener is at the limit", ct);
        TransportMetrics.FdLimitLeft();

        double stopped = reader.Collect().Sum(Time);
        Assert.That(reader.Collect().Sum(Time), Is.EqualTo(stopped), "no listener at the limit: the time stands still");
        TransportMetrics.FdLimitLeft(); // one too many is ignored
        Assert.That(reader.Collect().Sum(Time), Is.EqualTo(stopped));
    }

    private static Task WaitForClosedAsync(MeterReader reader, MeterReader.Snapshot before, string transport, string reason, int count, CancellationToken ct)
    {
        string[] tags = [$"network.transport={transport}", $"pipetransport.connection.close_reason={reason}"];
        return WaitForAsync(reader, s => s.Sum(Closed, tags) - before.Sum(Closed, tags) == count, $"{count} {transport} connection(s) closed as {reason}", ct);
    }

    /// <summary>Collects until <paramref name="condition"/> holds; fails with the last snapshot when the test's time runs out.</summary>
    private static async Task<MeterReader.Snapshot> WaitForAsync(MeterReader reader, Func<MeterReader.Snapshot, bool> condition, string what, CancellationToken ct)
    {
        while (true)
        {
            MeterReader.Snapshot snapshot = reader.Collect();
            if (condition(snapshot))
            {
                return snapshot;
            }

            if (ct.IsCancellationRequested)
            {
                Assert.Fail($"waited in vain for {what}; the meter said:\n{snapshot}");
            }

            await Task.Delay(5, CancellationToken.None);
        }
    }
}
