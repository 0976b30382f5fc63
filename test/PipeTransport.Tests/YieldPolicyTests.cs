using System.Diagnostics;
using NUnit.Framework;
using PipeTransport.Reactor;

namespace PipeTransport.Tests;

/// <summary>
/// The reactor's rule for yielding before it blocks (the end-to-end behaviour with the yield on and
/// off is in <see cref="SocketTests"/>): a slow yield that gathered no batch stops the yields for
/// <see cref="SchedulingConstants.SuspensionTicks"/>; a short one, or a slow one that gathered events or
/// pool work, does not.
/// </summary>
[CancelAfter(5000)]
public class YieldPolicyTests
{
    private static readonly long Start = Stopwatch.GetTimestamp();
    private static readonly long Long = SchedulingConstants.SlowTurnTicks + 1;

    [Test]
    public void A_new_reactor_yields()
    {
        var policy = default(YieldPolicy);
        Assert.That(policy.ShouldYield(Start), Is.True);
    }

    [Test]
    public void A_long_yield_that_gathered_nothing_stops_the_yields_for_the_backoff()
    {
        var policy = default(YieldPolicy);
        policy.OnYielded(Start, Start + Long, eventsAfter: 1, poolWorkDuring: 2);
        long after = Start + Long;
        Assert.Multiple(() =>
        {
            Assert.That(policy.ShouldYield(after), Is.False);
            Assert.That(policy.ShouldYield(after + SchedulingConstants.SuspensionTicks - 1), Is.False);
            Assert.That(policy.ShouldYield(after + SchedulingConstants.SuspensionTicks), Is.True);
        });
    }

    [TestCase(SchedulingConstants.MinBatch, 0)]
    [TestCase(0, SchedulingConstants.MinBatch)]
    [TestCase(200, 500)]
    public void A_long_yield_that_gathered_a_batch_keeps_the_yields(int events, long poolWork)
    {
        var policy = default(YieldPolicy);
        policy.OnYielded(Start, Start + Long, events, poolWork);
        Assert.That(policy.ShouldYield(Start + Long), Is.True);
    }

    [Test]
    public void A_short_yield_keeps_the_yields_whatever_it_gathered()
    {
        var policy = default(YieldPolicy);
        policy.OnYielded(Start, Start + SchedulingConstants.SlowTurnTicks, eventsAfter: 0, poolWorkDuring: 0);
        Assert.That(policy.ShouldYield(Start + SchedulingConstants.SlowTurnTicks), Is.True);
    }
}
