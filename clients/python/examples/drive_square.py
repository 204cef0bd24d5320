#!/usr/bin/python3
"""Drive the robot around a square: forward, turn right 90 degrees, four times.

Each command waits for the agent's CommandResult and stops the script with a
non-zero exit status if one is not RESULT_OK.  While the robot moves, the
Robot helper holds the controller lease with keepalives, and the script waits
for the wheels to stand still before the next side.

    drive_square.py --robot alex --side 30 --speed 60
"""
import argparse
import sys

import curvebus


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--robot", default="alex")
    p.add_argument("--side", type=int, default=30, help="cm per side")
    p.add_argument("--speed", type=int, default=60, help="speed %%")
    p.add_argument("--angle", type=int, default=90)
    p.add_argument("--endpoint")
    p.add_argument("--server-key")
    p.add_argument("--key")
    p.add_argument("--home")
    a = p.parse_args()
    try:
        with curvebus.connect(a.endpoint, a.server_key, a.key, a.home) as client:
            robot = curvebus.Robot(client, a.robot)
            try:
                for side in range(1, 5):
                    r = robot.forward(a.side, a.speed)
                    print("side %d: forward %d cm -> %s (%d us)" % (
                        side, a.side, curvebus.robot.rpb.ResultStatus.Name(r.status), r.latency_us), flush=True)
                    robot.wait_until_stopped()
                    r = robot.right(a.angle, a.speed)
                    print("side %d: right %d deg -> %s" % (
                        side, a.angle, curvebus.robot.rpb.ResultStatus.Name(r.status)), flush=True)
                    robot.wait_until_stopped()
                robot.stop()
                stats = robot.get_stats()
                print("done: forward %d cm, ticks L%d/R%d" % (
                    stats.forward_dist_cm, stats.left_forward_ticks, stats.right_forward_ticks))
            finally:
                robot.close()
    except curvebus.CurvebusError as e:
        print("drive_square: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
