using NUnit.Framework;
namespace PipeTransport.Tests;
public class SmokeTests
{
    [Test, CancelAfter(5000)]
    public void Works(CancellationToken ct) => Assert.That(Environment.ProcessId, Is.Positive);
}
