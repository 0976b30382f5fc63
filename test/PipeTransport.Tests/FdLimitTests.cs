using System.Net.Sockets;
using Mono.Unix.Native;
using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>At the fd limit: errors are described without loading anything, and a listener waits instead of failing.</summary>
public sealed class FdLimitTests
{
    [Test, CancelAfter(10_000)]
    public void ErrnoNamesAndMessagesNeedNoNativeHelper(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var e = PipeTransportException.FromResult(-Libc.EMFILE, "accept4", "tcp:127.0.0.1:80");
        Assert.That(e.Errno, Is.EqualTo(Errno.EMFILE));
        Assert.That(e.Message, Is.EqualTo("accept4 tcp:127.0.0.1:80: EMFILE (Too many open files)"));
        Assert.That(new PipeTransportException(Errno.ENFILE, "socket", null).Message, Is.EqualTo("socket: ENFILE (Too many open files in system)"));
        Assert.That(PipeTransportException.FromResult(-Libc.EPIPE, "write", "fd 3"), Is.InstanceOf<FdConnectionResetException>());
        Assert.That(ErrnoText.Describe(4000), Is.EqualTo("errno 4000 (error 4000)"));

        // The managed table says what the C library says, and Mono.Posix's Errno values are the Linux numbers.
        for (int errno = 1; errno <= 133; errno++)
        {
            string expected = System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno);
            Assert.That(ErrnoText.Message(errno), Is.EqualTo(expected.StartsWith("Unknown error", StringComparison.Ordinal) ? $"error {errno}" : expected), $"errno {errno}");
        }

        foreach (Errno value in Enum.GetValues<Errno>().Where(v => (int)v is > 0 and < 1000))
        {
            Assert.That(NativeConvert.FromErrno(value), Is.EqualTo((int)value), value.ToString());
        }
    }

    [Test, CancelAfter(60_000)]
    public async Task ErrorsAtEmfileAreTypedAndAnAcceptWaitsForAFreeFd(CancellationToken ct)
    {
        string dir = Directory.CreateTempSubdirectory("pt-emfile-").FullName;
        try
        {
            await using FdExhaustion child = FdExhaustion.StartTestChild(FdExhaustion.DefaultLimit, "errors-at-emfile", dir);
            int port = int.Parse(await child.WaitLineAsync("filled; connect to ", ct), System.Globalization.CultureInfo.InvariantCulture);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port), ct);
            int acceptedAfterMs = int.Parse(await child.WaitLineAsync("accepted after ms:", ct), System.Globalization.CultureInfo.InvariantCulture);
            string monoHelper = await child.WaitLineAsync("MonoPosixHelper loaded:", ct);
            TestContext.Out.WriteLine($"accepted {acceptedAfterMs} ms after fds came free");
            Assert.That(TimeSpan.FromMilliseconds(acceptedAfterMs), Is.LessThan(FdExhaustion.MaxResumeLatency), "from freeing fds to accepting");
            string output = child.Output;
            Assert.That(output, Does.Contain($"mkfifo: PipeTransportException: mkfifo {dir}/missing/fifo: ENOENT (No such file or directory)"));
            Assert.That(output, Does.Contain("bind: PipeTransportException: socket tcp:127.0.0.1:0: EMFILE (Too many open files)"));
            Assert.That(output, Does.Match(@"connect: PipeTransportException: socket \S+: EMFILE \(Too many open files\)"));
            Assert.That(output, Does.Contain($"open: PipeTransportException: open {dir}/fifo: EMFILE (Too many open files)"));
            Assert.That(output, Does.Contain("pair: PipeTransportException: socketpair: EMFILE (Too many open files)"));
            Assert.That(output, Does.Contain("event AcceptError EMFILE").And.Contain("event FdLimitEntered EMFILE").And.Contain("accepted: True True"));
            Assert.That(monoHelper, Is.EqualTo("False"), output);
            Assert.That(await child.StopAsync(ct), Is.EqualTo(0), output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase(false, FdListenerOptions.DefaultFdHeadroom)]
    [TestCase(true, FdListenerOptions.DefaultFdHeadroom)]
    [TestCase(false, 20)]
    [CancelAfter(120_000)]
    public async Task AListenerAtTheFdLimitWaitsWithoutSpinningAndServesTheBacklogOnceFdsAreFree(bool reusePort, int headroom, CancellationToken ct)
    {
        await using FdExhaustion child = FdExhaustion.StartTestChild(FdExhaustion.DefaultLimit, "echo-listener", reusePort.ToString(), headroom.ToString(System.Globalization.CultureInfo.InvariantCulture));
        int port = int.Parse(await child.WaitLineAsync("listening ", ct), System.Globalization.CultureInfo.InvariantCulture);

        await child.RunAsync(port, EchoAsync, headroom, ct);

        Assert.That(child.Output, Does.Contain(headroom > 0 ? "FdLimitEntered 0" : "FdLimitEntered EMFILE").And.Contain("FdLimitLeft"));
        Assert.That(child.HasLoaded("MonoPosixHelper"), Is.False);
        Assert.That(await child.StopAsync(ct), Is.EqualTo(0), child.Output);
    }

    private static async Task EchoAsync(Socket client, CancellationToken ct)
    {
        await client.SendAsync("x"u8.ToArray(), ct);
        var answer = new byte[1];
        Assert.That(await client.ReceiveAsync(answer, ct), Is.EqualTo(1));
    }
}
