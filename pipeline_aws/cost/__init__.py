"""What every run cost: rate card, pricing of EMR Serverless / EMR on EC2 / orchestration,
budget checks, and the TrackCost logic behind functions/track_cost."""

from pipeline_aws.cost.rate_card import RateCard, Unpriced, load_rate_card
from pipeline_aws.cost.tracker import CostRequest, CostTracker, Settings, parse_request

__all__ = ["CostRequest", "CostTracker", "RateCard", "Settings", "Unpriced", "load_rate_card",
           "parse_request"]
