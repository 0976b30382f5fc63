using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>
/// socat on the other side of TCP and Unix sockets, as client and as server, with integrity-checked
/// transfers and half-close in both directions.
/// </summary>
[TestFixture("tcp"), TestFixture("unix")]
public sealed class SocatInteropTests
{
    private const long Size = 32L << 20;
    private readonly string _kind;
    private readonly List<Process> _processes = new();
    private string _dir = null!;

    public SocatInteropTests(string kind) => _kind = kind;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("pt-socat-").FullName;

    [TearDown]
    public void TearDown()
    {
        foreach (Process process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit();
            }

            TestProcess.Close(process);
        }

        _processes.Clear();
        Directory.Delete(_dir, recursive: true);
    }

    private Process StartSocat(params string[] args)
    {
        Process process = TestProcess.Start("socat", args);
        _processes.Add(process);
        return process;
    }

    /// <summary>
    /// socat connects to our listener, sends its stdin and half-closes; we read to EOF, then answer
    /// on the still-open other direction; socat prints the answer and exits at our EOF.
    /// </summary>
    [Test, CancelAfter(60_000)]
    public async Task SocatClientSendsHalfClosesAndReadsOurReply(CancellationToken ct)
    {
        EndPoint endPoint = _kind == "tcp" ? new IPEndPoint(IPAddress.Loopback, 0) : new UnixDomainSocketEndPoint(Path.Combine(_dir, "server"));
        await using FdListener listener = FdListener.Bind(endPoint);
        string target = listener.LocalEndPoint is IPEndPoint ip ? $"TCP:127.0.0.1:{ip.Port}" : $"UNIX-CONNECT:{listener.LocalEndPoint}";
        Process socat = StartSocat("-t", "30", "-b", "65536", "-", target);

        var sent = new TestData(21);
        Task feed = Task.Run(async () =>
        {
            PipeWriter stdin = PipeWriter.Create(socat.StandardInput.BaseStream);
            await sent.WriteAsync(stdin, Size, 1, ct);
            await stdin.CompleteAsync(); // closes socat's stdin: socat shuts down its write side
        }, ct);

        await using FdConnection server = (await listener.AcceptAsync(ct))!;
        var received = new TestData(0);
        await received.ReadToEndAsync(server.Input, 2, ct);
        await feed;
        Assert.That(received.Length, Is.EqualTo(Size));
        Assert.That(received.Hash, Is.EqualTo(sent.Hash));

        // Our direction is still open after the client's half-close.
        var reply = new TestData(22);
        Task answer = Task.Run(async () => { await reply.WriteAsync(server.Output, Size / 4, 3, ct); await server.Output.CompleteAsync(); }, ct);
        var echoed = new TestData(0);
        await echoed.ReadToEndAsync(PipeReader.Create(socat.StandardOutput.BaseStream), 4, ct);
        await answer;
        await socat.WaitForExitAsync(ct);
        Assert.That(echoed.Length, Is.EqualTo(Size / 4));
        Assert.That(echoed.Hash, Is.EqualTo(reply.Hash));
        Assert.That(socat.ExitCode, Is.Zero);
    }

    /// <summary>
    /// socat listens and runs <c>cat</c> for the connection; we send, half-close, and keep reading
    /// until everything comes back and socat closes.
    /// </summary>
    [Test, CancelAfter(60_000)]
    public async Task SocatServerEchoesUntilOurHalfClose(CancellationToken ct)
    {
        EndPoint endPoint;
        string listen;
        if (_kind == "tcp")
        {
            int port;
            await using (FdListener probe = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0)))
            {
                port = ((IPEndPoint)probe.LocalEndPoint).Port;
            }

            endPoint = new IPEndPoint(IPAddress.Loopback, port);
            listen = $"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr";
        }
        else
        {
            string path = Path.Combine(_dir, "socat.sock");
            endPoint = new UnixDomainSocketEndPoint(path);
            listen = $"UNIX-LISTEN:{path}";
        }

        Process socat = StartSocat("-d", "-d", "-t", "30", "-b", "65536", listen, "EXEC:cat");
        {
            await TestProcess.WaitForStderrAsync(socat, "listening on", ct);
            Task drainStderr = socat.StandardError.ReadToEndAsync(ct);
            await using FdConnection client = await FdConnection.ConnectAsync(endPoint, null, ct);
            var sent = new TestData(31);
            Task send = Task.Run(async () => { await sent.WriteAsync(client.Output, Size, 5, ct); await client.Output.CompleteAsync(); }, ct);
            var back = new TestData(0);
            await back.ReadToEndAsync(client.Input, 6, ct);
            await send;
            Assert.That(back.Length, Is.EqualTo(Size));
            Assert.That(back.Hash, Is.EqualTo(sent.Hash));
            await socat.WaitForExitAsync(ct);
            await drainStderr;
            Assert.That(socat.ExitCode, Is.Zero);
        }
    }
}
