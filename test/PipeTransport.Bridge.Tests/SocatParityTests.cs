using System.Text;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Command lines that socat users type, behaving as they do under socat.</summary>
public sealed class SocatParityTests
{
    /// <summary><c>echo abc | socat - -</c> echoes stdin to stdout once; both addresses are fds 0 and 1.</summary>
    [TestCase("-", "-"), TestCase("stdio", "-"), CancelAfter(20_000)]
    public async Task StdioToStdioEchoesStdin(string first, string second, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start([first, second], redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes("abc\n"), cancellationToken);
        bridge.Process.StandardInput.Close();

        string output = await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(output, Is.EqualTo("abc\n"));
        Assert.That(bridge.Stderr, Is.Empty);
    }
}
