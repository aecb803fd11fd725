"""What every run cost: rate card, pricing of EMR Serverless / EMR on EC2 / orchestration,
budget checks, and the TrackCost logic behind functions/track_cost."""

from pipeline_aws.cost.rate_card import RateCard, Unpriced, load_rate_card
from pipeline_aws.cost.tracker import CostTracker

__all__ = ["CostTracker", "RateCard", "Unpriced", "load_rate_card"]
